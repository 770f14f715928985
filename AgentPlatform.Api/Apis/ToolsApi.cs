using System.Security.Claims;
using System.Text.Json;
using AgentPlatform.Api.Admission;
using AgentPlatform.Api.Auth;
using AgentPlatform.Engine.Tools;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace AgentPlatform.Api.Apis;

/// <summary>A tool as a client sees it: what the model would be offered.</summary>
public sealed record ToolView(string Name, string Description, JsonElement Parameters, string Source)
{
    public static ToolView From(ToolDescriptor tool) => new(tool.Name, tool.Description, tool.ParametersSchema, tool.Source);
}

/// <summary>The tools a key may use, and running one directly (seed 003's POST /agent/tools/{tool_name}).</summary>
public static class ToolsApi
{
    public static IEndpointRouteBuilder MapToolsApi(this IEndpointRouteBuilder app)
    {
        var tools = app.MapGroup("/agent/tools")
            .WithTags("Tools")
            .RequireAuthorization()
            .AddEndpointFilter<RateLimitFilter>();

        tools.MapGet("/", ListTools)
            .WithName("ListTools")
            .WithSummary("The tools this API key may call directly, with their JSON schemas")
            .WithDescription("Without allowed_tools a key may call the built-in tools; an MCP server's tools need a grant such as \"github_*\".");

        tools.MapPost("/{tool_name}", InvokeToolAsync)
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status403Forbidden)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .WithName("InvokeTool")
            .WithSummary("Run one tool with the arguments in the body (a JSON object)")
            .WithDescription("A tool that fails or exceeds its time limit still answers 200, with outcome error or timeout.");

        return app;
    }

    public static Ok<List<ToolView>> ListTools([FromServices] IToolCatalog catalog, ClaimsPrincipal user)
    {
        return TypedResults.Ok(catalog.DirectlyCallableBy(user.GetCaller().ToToolCaller()).Select(ToolView.From).ToList());
    }

    public static async Task<Results<Ok<ToolInvocationResult>, ProblemHttpResult>> InvokeToolAsync(
        [FromRoute(Name = "tool_name")] string toolName,
        [FromBody] JsonElement? arguments,
        [FromServices] IToolCatalog catalog,
        ClaimsPrincipal user,
        CancellationToken cancellationToken)
    {
        try
        {
            return TypedResults.Ok(await catalog.InvokeAsync(toolName, arguments ?? default, user.GetCaller().ToToolCaller(), cancellationToken));
        }
        catch (ToolNotFoundException e)
        {
            return TypedResults.Problem(statusCode: 404, title: "Tool not found", detail: e.Message,
                extensions: new Dictionary<string, object?> { ["tool"] = e.Tool });
        }
        catch (ToolForbiddenException e)
        {
            return TypedResults.Problem(statusCode: 403, title: "Tool not allowed", detail: e.Message,
                extensions: new Dictionary<string, object?> { ["tool"] = e.Tool });
        }
        catch (ToolArgumentsException e)
        {
            // Shaped like TypedResults.ValidationProblem, but as a plain problem: the API renames validation
            // fields to snake_case, and tool parameters (often an MCP server's camelCase) must keep their own names.
            return TypedResults.Problem(statusCode: 400, title: "One or more validation errors occurred.", detail: e.Message,
                type: "https://tools.ietf.org/html/rfc9110#section-15.5.1",
                extensions: new Dictionary<string, object?> { ["tool"] = e.Tool, ["errors"] = e.Errors });
        }
    }
}
