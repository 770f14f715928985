using System.Net.Http.Json;
using System.Text.Json;

namespace AgentPlatform.AppHost.Tests;

/// <summary>One span as the dashboard's telemetry API returns it (OTLP JSON), with the resource that sent it.</summary>
public sealed record DashboardSpan(string Resource, string Scope, string Name, string TraceId, string SpanId, string? ParentSpanId)
{
    public bool IsRoot => string.IsNullOrEmpty(ParentSpanId);
}

public static class DashboardTelemetry
{
    /// <summary>GET a telemetry API path and flatten its <c>resourceSpans</c>.</summary>
    public static async Task<(int TotalCount, IReadOnlyList<DashboardSpan> Spans)> GetSpansAsync(this HttpClient dashboard, string path)
    {
        // 404: no such trace yet, or a resource that has sent no traces.
        using var response = await dashboard.GetAsync(path);
        if (response.StatusCode == HttpStatusCode.NotFound) return (0, []);
        response.EnsureSuccessStatusCode();
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        var total = body.TryGetProperty("totalCount", out var count) ? count.GetInt32() : 0;
        var data = body.TryGetProperty("data", out var d) ? d : body;
        List<DashboardSpan> spans = [];
        if (!data.TryGetProperty("resourceSpans", out var resourceSpans)) return (total, spans);
        foreach (var resourceSpan in resourceSpans.EnumerateArray())
        {
            var resource = resourceSpan.GetProperty("resource").GetProperty("attributes").EnumerateArray()
                .Where(a => a.GetProperty("key").GetString() == "service.name")
                .Select(a => a.GetProperty("value").GetProperty("stringValue").GetString()).FirstOrDefault() ?? "";
            foreach (var scopeSpan in resourceSpan.GetProperty("scopeSpans").EnumerateArray())
            {
                var scope = scopeSpan.GetProperty("scope").GetProperty("name").GetString() ?? "";
                foreach (var span in scopeSpan.GetProperty("spans").EnumerateArray())
                {
                    spans.Add(new DashboardSpan(resource, scope, span.GetProperty("name").GetString() ?? "",
                        span.GetProperty("traceId").GetString() ?? "", span.GetProperty("spanId").GetString() ?? "",
                        span.TryGetProperty("parentSpanId", out var parent) ? parent.GetString() : null));
                }
            }
        }
        return (total, spans);
    }
}
