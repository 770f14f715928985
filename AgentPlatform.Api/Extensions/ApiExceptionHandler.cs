using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics;
using Npgsql;
using StackExchange.Redis;

namespace AgentPlatform.Api.Extensions;

/// <summary>
/// Turns what can go wrong outside a handler's control into problem+json: malformed JSON is a 400
/// naming the field, an oversized body 413, an unreachable Redis or Postgres 503. Nothing a client
/// sends becomes a 500.
/// </summary>
public sealed class ApiExceptionHandler(IProblemDetailsService problems, ILogger<ApiExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext http, Exception exception, CancellationToken cancellationToken)
    {
        var (status, title, detail, errors) = Describe(exception);
        // A cancellation the client did not cause (a time limit inside the platform) is the platform's failure to answer.
        if (status == 499 && !http.RequestAborted.IsCancellationRequested)
            (status, title, detail) = (503, "Request timed out", "The platform could not answer in time. Retry shortly.");
        if (status >= 500) logger.LogError(exception, "Request failed: {Title}", title);
        if (status == StatusCodes.Status503ServiceUnavailable)
        {
            http.Response.Headers.RetryAfter = "5";
            AgentPlatform.Engine.Infrastructure.PostgresPools.ClearAfter(exception, http.RequestServices.GetService<NpgsqlDataSource>());
        }

        http.Response.StatusCode = status;
        var context = new ProblemDetailsContext
        {
            HttpContext = http,
            Exception = exception,
            ProblemDetails = { Status = status, Title = title, Detail = detail },
        };
        if (errors is not null) context.ProblemDetails.Extensions["errors"] = errors;
        return await problems.TryWriteAsync(context);
    }

    private static (int Status, string Title, string Detail, Dictionary<string, string[]>? Errors) Describe(Exception exception)
    {
        // A store's failure wrapped by a library (Hangfire's BackgroundJobClientException, EF Core's exceptions) is that
        // store's outage all the same.
        for (var inner = exception.InnerException; inner is not null; inner = inner.InnerException)
        {
            if (inner is NpgsqlException or RedisException) return Describe(inner);
        }
        switch (exception)
        {
            case BadHttpRequestException { InnerException: JsonException json }:
                var field = FieldOf(json.Path);
                var message = $"The JSON value is not valid for '{field}'.";
                return (400, "Invalid request body", json.Path is null or "$" ? "The request body is not valid JSON." : message,
                    new() { [field] = [message] });
            case BadHttpRequestException bad when bad.StatusCode == StatusCodes.Status413PayloadTooLarge:
                return (413, "Request body too large", bad.Message, null);
            case BadHttpRequestException bad:
                return (bad.StatusCode, "Bad request", bad.Message, null);
            case AgentPlatform.Engine.Llm.AgentUnavailableException unavailable:
                return (503, "Agent unavailable", unavailable.Message, null);
            case RedisException:
                return (503, "Redis unavailable", "Rate limiting needs Redis, which is not reachable. Retry shortly.", null);
            case NpgsqlException:
            case InvalidOperationException { InnerException: NpgsqlException }:
            case Microsoft.EntityFrameworkCore.DbUpdateException { InnerException: NpgsqlException { IsTransient: true } }:
                return (503, "Database unavailable", "Postgres is not reachable. Retry shortly.", null);
            case OperationCanceledException:
                return (499, "Client closed request", "The request was cancelled.", null);
            default:
                return (500, "Internal server error", "An unexpected error occurred; it has been logged.", null);
        }
    }

    // "$.context.items[2]" → "context.items[2]"; "$" → "body".
    private static string FieldOf(string? path) =>
        string.IsNullOrEmpty(path) || path == "$" ? "body" : path.StartsWith("$.") ? path[2..] : path.TrimStart('$');
}
