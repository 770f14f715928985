using AgentPlatform.Engine.Agents;
using AgentPlatform.Engine.Llm;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace AgentPlatform.Api.Apis;

public sealed record AgentView(string Name, string Description, string Model, string[] Keywords)
{
    public static AgentView From(AgentDefinition agent, ChatClientPool llm) =>
        new(agent.Name, agent.Description, llm.ModelFor(agent.Model), agent.Keywords);
}

/// <summary>The agents a client can address (seed 000).</summary>
public static class AgentsApi
{
    public static IEndpointRouteBuilder MapAgentsApi(this IEndpointRouteBuilder app)
    {
        var agents = app.MapGroup("/agents").WithTags("Agents").RequireAuthorization();
        agents.MapGet("/", (AgentCatalog catalog, ChatClientPool llm) =>
                TypedResults.Ok(catalog.All.Select(a => AgentView.From(a, llm)).ToList()))
            .WithName("ListAgents").WithSummary("All agents");
        agents.MapGet("/{name}", GetAgent).WithName("GetAgent").WithSummary("One agent");
        return app;
    }

    public static Results<Ok<AgentView>, NotFound<ProblemDetails>> GetAgent(string name, [FromServices] AgentCatalog catalog, [FromServices] ChatClientPool llm) =>
        catalog.Find(name) is { } agent
            ? TypedResults.Ok(AgentView.From(agent, llm))
            : TypedResults.NotFound(new ProblemDetails { Status = 404, Title = "Agent not found", Detail = $"No agent named '{name}'." });
}
