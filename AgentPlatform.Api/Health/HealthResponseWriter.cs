using System.Reflection;
using System.Text.Json;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace AgentPlatform.Api.Health;

/// <summary>Writes /health as <c>{status, timestamp, version, checks:{name:status}, details:{…}}</c>.</summary>
public static class HealthResponseWriter
{
    public static readonly string[] ExpectedChecks = ["postgres", "redis", "qdrant", "llm", "worker"];

    private static readonly string Version =
        typeof(HealthResponseWriter).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0]
        ?? "0.0.0";

    public static Task WriteAsync(HttpContext http, HealthReport report)
    {
        var checks = ExpectedChecks.ToDictionary(name => name, name =>
            report.Entries.TryGetValue(name, out var entry) ? Name(entry.Status) : "not_configured");
        var details = report.Entries.Where(e => !e.Value.Tags.Contains("live")).ToDictionary(e => e.Key, e => new
        {
            status = Name(e.Value.Status),
            description = e.Value.Description ?? e.Value.Exception?.Message,
            duration_ms = Math.Round(e.Value.Duration.TotalMilliseconds, 1),
        });
        http.Response.ContentType = "application/json";
        return JsonSerializer.SerializeAsync(http.Response.Body, new
        {
            status = Name(report.Status),
            timestamp = DateTimeOffset.UtcNow,
            version = Version,
            checks,
            details,
        }, cancellationToken: http.RequestAborted);
    }

    private static string Name(HealthStatus status) => status switch
    {
        HealthStatus.Healthy => "healthy",
        HealthStatus.Degraded => "degraded",
        _ => "unhealthy",
    };
}
