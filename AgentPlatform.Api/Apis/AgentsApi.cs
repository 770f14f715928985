using AgentPlatform.Engine.Agents;
using AgentPlatform.Engine.Execution;
using AgentPlatform.Engine.Llm;
using AgentPlatform.Engine.Routing;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace AgentPlatform.Api.Apis;

public sealed record AgentModelView(string Provider, string Model, int CostTier);

public sealed record AgentView(string Name, string Description, string Model, IReadOnlyList<AgentModelView> Models, string[] Keywords,
    string[] Tools, int TimeoutSeconds, string Source)
{
    public static AgentView From(AgentDefinition agent, AgentSource source, ChatClientPool pool)
    {
        var models = AgentClients.OptionsOf(agent)
            .Select(o => (Resolved: pool.Resolve(o.Provider, o.Model), o.CostTier))
            .Select(o => new AgentModelView(o.Resolved.Provider, o.Resolved.Model, o.CostTier)).ToList();
        return new(agent.Name, agent.Description, models[0].Model, models, agent.Keywords, agent.Tools, agent.TimeoutSeconds,
            source == AgentSource.Database ? "database" : "configuration");
    }
}

public sealed record ModelHealthView(string Provider, string Model, string BreakerState, double? SuccessRate, long Calls,
    double? P95LatencyMs, string? LastError, DateTimeOffset? LastErrorAt, int? RetryAfterSeconds);

public sealed record AgentHealthView(string Name, string Status, double SuccessRate, double? AverageLatencyMs, IReadOnlyList<ModelHealthView> Models);

/// <summary>The agents a client can address (seed 000), and how each is doing.</summary>
public static class AgentsApi
{
    public static IEndpointRouteBuilder MapAgentsApi(this IEndpointRouteBuilder app)
    {
        var agents = app.MapGroup("/agents").WithTags("Agents").RequireAuthorization();
        agents.MapGet("/", ListAgents).WithName("ListAgents").WithSummary("All agents");
        agents.MapGet("/{name}", GetAgent).WithName("GetAgent").WithSummary("One agent");
        agents.MapGet("/{name}/health", GetAgentHealthAsync).WithName("GetAgentHealth")
            .WithSummary("Breaker state per model, success rate, p95 latency and last error (breakers and latency are this instance's)");
        return app;
    }

    public static Ok<List<AgentView>> ListAgents([FromServices] AgentRegistry registry, [FromServices] ChatClientPool pool)
    {
        var snapshot = registry.Current;
        return TypedResults.Ok(snapshot.All.Select(a => AgentView.From(a, snapshot.Sources[a.Name], pool)).ToList());
    }

    public static Results<Ok<AgentView>, NotFound<ProblemDetails>> GetAgent(string name, [FromServices] AgentRegistry registry,
        [FromServices] ChatClientPool pool)
    {
        var snapshot = registry.Current;
        return snapshot.Agents.TryGetValue(name, out var agent)
            ? TypedResults.Ok(AgentView.From(agent, snapshot.Sources[agent.Name], pool))
            : AgentNotFound(name);
    }

    public static async Task<Results<Ok<AgentHealthView>, NotFound<ProblemDetails>>> GetAgentHealthAsync(string name,
        [FromServices] AgentRegistry registry, [FromServices] AgentClients clients, [FromServices] AgentStats stats,
        [FromServices] Microsoft.Extensions.Options.IOptionsMonitor<RouterOptions> router)
    {
        if (registry.Find(name) is not { } agent) return AgentNotFound(name);
        var models = clients.ChainOf(agent).Select(link =>
        {
            var b = link.Client.Breaker;
            return new ModelHealthView(link.Provider, link.Model, b.EffectiveState switch
            {
                Polly.CircuitBreaker.CircuitState.HalfOpen => "half_open",
                var state => state.ToString().ToLowerInvariant(),
            }, b.SuccessRate, b.Calls,
                b.P95LatencyMs, b.LastError, b.LastErrorAt,
                b.RetryAfter > TimeSpan.Zero ? (int)Math.Ceiling(b.RetryAfter.TotalSeconds) : null);
        }).ToList();
        var record = (await stats.ReadAsync()).GetValueOrDefault(agent.Name, new AgentTrackRecord(router.CurrentValue.PriorSuccessRate, null));
        var open = models.Count(m => m.BreakerState == "open");
        var status = open == 0 ? "healthy" : open == models.Count ? "unavailable" : "degraded";
        return TypedResults.Ok(new AgentHealthView(agent.Name, status, Math.Round(record.SuccessRate, 4), record.LatencyMs, models));
    }

    internal static NotFound<ProblemDetails> AgentNotFound(string name) =>
        TypedResults.NotFound(new ProblemDetails { Status = 404, Title = "Agent not found", Detail = $"No agent named '{name}'." });
}
