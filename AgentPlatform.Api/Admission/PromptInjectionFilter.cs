using AgentPlatform.Engine.Admission;

namespace AgentPlatform.Api.Admission;

/// <summary>A request body that carries text for a model.</summary>
public interface IPromptRequest
{
    /// <summary>Field name (as the client sent it) and text of every prompt-bearing field.</summary>
    IEnumerable<(string Field, string? Text)> PromptFields();
}

/// <summary>Refuses a request whose prompt matches a configured injection pattern with 422.</summary>
public sealed class PromptInjectionFilter(PromptInjectionDetector detector, ILogger<PromptInjectionFilter> logger) : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        foreach (var request in context.Arguments.OfType<IPromptRequest>())
        {
            foreach (var (field, text) in request.PromptFields())
            {
                if (detector.Detect(text) is not { } pattern) continue;
                logger.LogWarning("Prompt injection pattern {Pattern} matched in field {Field}", pattern, field);
                return TypedResults.Problem(
                    statusCode: StatusCodes.Status422UnprocessableEntity,
                    title: "Prompt injection detected",
                    detail: $"The field '{field}' matches a blocked prompt-injection pattern.",
                    extensions: new Dictionary<string, object?> { ["field"] = field });
            }
        }
        return await next(context);
    }
}
