using System.Text.Json;
using Microsoft.AspNetCore.Mvc;

namespace AgentPlatform.Api.Extensions;

/// <summary>
/// Every problem the platform writes for a request to the OpenAI-compatible API (<c>/v1/*</c> and
/// <c>/agents/{name}/chat/completions</c>) goes out in OpenAI's error shape instead of problem+json, with the same status
/// code: <c>{"error":{"message","type","param","code"}}</c>. Authentication, the rate limiter, validation, malformed JSON,
/// the exception handler and the handlers themselves all write through <see cref="IProblemDetailsService"/>, so this one
/// writer covers them all, and the official SDKs raise their usual exceptions.
/// </summary>
public sealed class OpenAiErrorWriter : IProblemDetailsWriter
{
    /// <summary>Extension a handler sets on a problem to name OpenAI's <c>param</c> (else the first field error names it).</summary>
    public const string ParamExtension = "param";

    /// <summary>Extension a handler sets on a problem to name OpenAI's <c>code</c> (else one follows from the status).</summary>
    public const string CodeExtension = "code";

    public static bool IsOpenAiRequest(HttpContext http)
    {
        var path = http.Request.Path;
        return path.StartsWithSegments("/v1")
               || (path.StartsWithSegments("/agents") && path.Value!.TrimEnd('/').EndsWith("/chat/completions", StringComparison.OrdinalIgnoreCase));
    }

    public bool CanWrite(ProblemDetailsContext context) => IsOpenAiRequest(context.HttpContext);

    public ValueTask WriteAsync(ProblemDetailsContext context)
    {
        var http = context.HttpContext;
        http.Response.Headers["x-request-id"] = http.TraceIdentifier;
        var error = new OpenAiError(Describe(context.ProblemDetails, context.ProblemDetails.Status ?? http.Response.StatusCode, http.Request));
        return new ValueTask(http.Response.WriteAsJsonAsync(error, ErrorJson, "application/json", http.RequestAborted));
    }

    /// <summary>A problem in OpenAI's terms: the message a person reads, the type and code by status, the field as param.</summary>
    public static OpenAiErrorBody Describe(ProblemDetails problem, int status, HttpRequest? request = null)
    {
        var (param, fieldMessage) = FieldErrors(problem).Select(e => (e.Key, e.Value.FirstOrDefault())).FirstOrDefault();
        param = Extension(problem, ParamExtension) ?? Extension(problem, "field") ?? param;
        // A validation problem says what is wrong in its field errors; other problems in their detail.
        var message = problem.Detail ?? fieldMessage ?? problem.Title ?? status switch
        {
            // Written by the framework with nothing but a status (status code pages): say what it means here.
            404 => $"Unknown endpoint {request?.Method} {request?.Path}. The OpenAI-compatible API serves GET /v1/models, " +
                   "POST /v1/chat/completions and POST /v1/embeddings.",
            405 => $"{request?.Method} is not allowed on {request?.Path}.",
            415 => "The request body must be JSON, sent with Content-Type: application/json.",
            _ => Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status) is { Length: > 0 } phrase ? phrase : "The request failed.",
        };
        return new OpenAiErrorBody(message, TypeOf(status), param, Extension(problem, CodeExtension) ?? CodeOf(status));
    }

    private static readonly JsonSerializerOptions ErrorJson = new(JsonSerializerDefaults.Web);

    /// <summary>OpenAI's error types by status (404 is an invalid request there too); the SDKs choose their exception by status.</summary>
    public static string TypeOf(int status) => status switch
    {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        >= 500 => "api_error",
        _ => "invalid_request_error",
    };

    private static string? CodeOf(int status) => status switch
    {
        401 => "invalid_api_key",
        404 => "not_found",
        413 => "request_too_large",
        422 => "unprocessable_entity",
        429 => "rate_limit_exceeded",
        503 => "service_unavailable",
        504 => "timeout",
        _ => null,
    };

    // Validation problems carry their field errors in Errors; the exception handler puts them in an "errors" extension.
    private static IEnumerable<KeyValuePair<string, string[]>> FieldErrors(ProblemDetails problem) => problem switch
    {
        HttpValidationProblemDetails validation => validation.Errors.Select(e =>
            KeyValuePair.Create(AgentPlatform.Api.Extensions.Extensions.JsonFieldName(e.Key), e.Value)),
        _ when problem.Extensions.TryGetValue("errors", out var errors) && errors is Dictionary<string, string[]> byField => byField,
        _ => [],
    };

    private static string? Extension(ProblemDetails problem, string name) =>
        problem.Extensions.TryGetValue(name, out var value) ? value?.ToString() : null;
}

/// <summary>OpenAI's error body.</summary>
public sealed record OpenAiError(OpenAiErrorBody Error);

public sealed record OpenAiErrorBody(string Message, string Type, string? Param, string? Code);
