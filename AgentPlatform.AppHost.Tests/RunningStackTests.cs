using System.Net.Http.Json;
using System.Text.Json;

namespace AgentPlatform.AppHost.Tests;

/// <summary>The platform as `dotnet run` on the AppHost starts it: DCP runs the Api and the Worker, the dashboard shows them.</summary>
[Collection(AppHostCollection.Name)]
public sealed class RunningStackTests(AppHostFixture host)
{
    [Fact]
    public async Task Api_started_by_the_apphost_reports_its_stores_qdrant_and_the_worker_healthy()
    {
        using var client = host.Client(apiKey: null);

        var health = await client.GetFromJsonAsync<JsonElement>("/health");

        Assert.Equal("healthy", health.GetProperty("status").GetString());
        var checks = health.GetProperty("checks");
        Assert.Equal("healthy", checks.GetProperty("postgres").GetString());
        Assert.Equal("healthy", checks.GetProperty("redis").GetString());
        Assert.Equal("healthy", checks.GetProperty("worker").GetString());
        // ConnectionStrings__qdrant reached the Api, whose Qdrant client called the double over gRPC with the key.
        Assert.Equal("healthy", checks.GetProperty("qdrant").GetString());
        Assert.Contains(host.Qdrant.Calls, call => call is ("qdrant.Qdrant/HealthCheck", "apphost-qdrant-key"));
    }

    [Fact]
    public async Task A_chat_recalls_a_memory_stored_in_qdrant_through_the_apphost_wiring()
    {
        using var client = host.Client(await host.CreateKeyAsync());
        var marker = "memo-" + Guid.NewGuid().ToString("N")[..8];

        using var stored = await client.PostAsJsonAsync("/agent/memories", new { content = $"The user keeps {marker} bee hives in the garden." });
        Assert.Equal(HttpStatusCode.Created, stored.StatusCode);
        using var chat = await client.PostAsJsonAsync("/agent/chat", new { message = $"How do I winter my {marker} bee hives?", agent_type = "general" });

        Assert.Equal(HttpStatusCode.OK, chat.StatusCode);
        // The memory went to Qdrant (the AppHost's qdrant connection string), and came back into the model's context.
        Assert.Contains(host.Qdrant.Calls, call => call is ("qdrant.Points/Upsert", "apphost-qdrant-key"));
        Assert.Contains(host.Qdrant.Calls, call => call.Method == "qdrant.Points/Query");
        var call = Assert.Single(host.Llm.Calls, c => !c.Completed && c.UserMessage.Contains($"winter my {marker}"));
        Assert.Contains($"The user keeps {marker} bee hives", call.Messages!.ToJsonString());
    }

    [Fact]
    public async Task Sync_task_is_answered_by_the_configured_provider()
    {
        using var client = host.Client(await host.CreateKeyAsync());

        using var response = await client.PostAsJsonAsync("/agent/execute", new { task = "Say hello to the AppHost", agent_type = "general" });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("completed", body.GetProperty("status").GetString());
        Assert.Contains(host.Llm.Calls, call => call.UserMessage.Contains("Say hello to the AppHost"));
    }

    [Fact]
    public async Task Async_task_runs_in_the_worker_as_one_trace_from_the_api_request_to_the_llm_call()
    {
        using var client = host.Client(await host.CreateKeyAsync());
        var marker = "trace-" + Guid.NewGuid().ToString("N")[..8];

        using var accepted = await client.PostAsJsonAsync("/agent/execute",
            new { task = $"Summarize the queue ({marker})", agent_type = "general", async_execution = true });
        Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
        var taskId = (await accepted.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("task_id").GetString();
        var status = await client.GetFromJsonAsync<JsonElement>($"/agent/status/{taskId}?wait=60");
        Assert.Equal("completed", status.GetProperty("status").GetString());

        // The Worker called the provider inside the trace the Api's request started…
        var call = Assert.Single(host.Llm.Calls, c => c.Completed && c.UserMessage.Contains(marker));
        var traceId = call.TraceParent?.Split('-')[1];
        Assert.False(string.IsNullOrEmpty(traceId), "The provider call carries a W3C traceparent.");

        // …and the dashboard shows that trace with the spans of both resources.
        using var dashboard = host.Dashboard();
        IReadOnlyList<DashboardSpan> spans = [];
        for (var attempt = 0; attempt < 60 && !HasWholeTrace(spans); attempt++)
        {
            await Task.Delay(500);
            spans = (await dashboard.GetSpansAsync($"/api/telemetry/traces/{traceId}")).Spans;
        }
        Assert.True(HasWholeTrace(spans), "Spans of the trace: " + string.Join(", ", spans.Select(s => $"{s.Resource}:{s.Name}")));
        Assert.All(spans, span => Assert.Equal(traceId, span.TraceId));

        static bool HasWholeTrace(IReadOnlyList<DashboardSpan> spans) =>
            spans.Any(s => s.Resource == "api" && s.Name == "POST /agent/execute" && s.IsRoot)
            && spans.Any(s => s.Resource == "worker" && s.Name == "agent.task")
            && spans.Any(s => s.Resource == "worker" && s.Name.StartsWith("chat ", StringComparison.Ordinal))
            // Redis spans come from the Aspire client integration (its profiler flushes them every 10 s).
            && spans.Any(s => s.Resource == "worker" && s.Scope == "OpenTelemetry.Instrumentation.StackExchangeRedis");
    }

    [Fact]
    public async Task Hangfire_polling_and_timers_do_not_fill_the_dashboards_trace_list()
    {
        // Hangfire polls its storage several times a second; unfiltered, that is hundreds of one-span traces a minute.
        var idle = TimeSpan.FromSeconds(15) - (DateTimeOffset.UtcNow - host.StartedAt);
        if (idle > TimeSpan.Zero) await Task.Delay(idle);
        using var dashboard = host.Dashboard();

        foreach (var resource in new[] { "worker", "api" })
        {
            var (total, spans) = await dashboard.GetSpansAsync($"/api/telemetry/traces?resource={resource}&limit=500");
            // A trace made only of Postgres/Redis calls is noise: polling, a timer, or a health probe's checks.
            var storageOnly = spans.GroupBy(s => s.TraceId)
                .Where(trace => trace.All(s => s.Scope is "Npgsql" or "OpenTelemetry.Instrumentation.StackExchangeRedis"))
                .ToList();
            Assert.True(storageOnly.Count == 0,
                $"{resource}: {storageOnly.Count} traces hold nothing but storage calls, e.g. "
                + string.Join(", ", storageOnly.FirstOrDefault()?.Select(s => s.Name) ?? []));
            Assert.True(total < 100, $"{resource}: {total} traces after a short run; the requests would be buried.");
        }
    }

    [Fact]
    public async Task Platform_metrics_come_from_the_services_the_dashboard_lists()
    {
        using var client = host.Client(await host.CreateKeyAsync());
        using var task = await client.PostAsJsonAsync("/agent/execute",
            new { task = "Count me in the metrics", agent_type = "general", async_execution = true });
        var taskId = (await task.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("task_id").GetString();
        var status = await client.GetFromJsonAsync<JsonElement>($"/agent/status/{taskId}?wait=60");
        Assert.Equal("completed", status.GetProperty("status").GetString());
        using var sync = await client.PostAsJsonAsync("/agent/execute", new { task = "Count me in the metrics too", agent_type = "general" });
        sync.EnsureSuccessStatusCode();
        await Task.Delay(TimeSpan.FromSeconds(2)); // one export interval

        using var dashboard = host.Dashboard();
        foreach (var name in new[] { "api", "worker" })
        {
            // Telemetry is exported in batches: give it a few intervals.
            JsonElement? resource = null;
            for (var attempt = 0; attempt < 30; attempt++)
            {
                var resources = await dashboard.GetFromJsonAsync<JsonElement>("/api/telemetry/resources");
                resource = resources.EnumerateArray().FirstOrDefault(r => r.GetProperty("name").GetString() == name
                    && r.GetProperty("hasTraces").GetBoolean() && r.GetProperty("hasMetrics").GetBoolean());
                if (resource?.ValueKind == JsonValueKind.Object) break;
                await Task.Delay(1000);
            }
            Assert.True(resource?.ValueKind == JsonValueKind.Object, $"{name} sends traces and metrics to the dashboard");
        }
        var metrics = await host.Client().GetStringAsync("/metrics"); // the admin key: /metrics is not anonymous
        Assert.Contains("agent_requests_total", metrics);
        Assert.Contains("agent_task_queue_depth", metrics);
    }
}
