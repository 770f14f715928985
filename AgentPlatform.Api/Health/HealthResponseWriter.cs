using System.Reflection;
using System.Text.Json;
using AgentPlatform.Api.Auth;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace AgentPlatform.Api.Health;

/// <summary>Writes /health as <c>{status, timestamp, version, checks:{name:status}, details:{…}}</c>; descriptions for the admin only.</summary>
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
        // Descriptions name the LLM endpoint and model, and exceptions carry hosts and ports: they are for the admin.
        // /health is anonymous, so everyone else sees each check's status, and whether the LLM is the offline model.
        var admin = http.User.IsInRole(CallerIdentity.AdminRole);
        var details = report.Entries.Where(e => !e.Value.Tags.Contains("live")).ToDictionary(e => e.Key, e =>
        {
            var detail = new Dictionary<string, object?> { ["status"] = Name(e.Value.Status) };
            if (admin) detail["description"] = e.Value.Description ?? e.Value.Exception?.Message;
            detail["duration_ms"] = Math.Round(e.Value.Duration.TotalMilliseconds, 1);
            if (e.Value.Data.TryGetValue(LlmHealthCheck.OfflineData, out var offline)) detail[LlmHealthCheck.OfflineData] = offline;
            return detail;
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
