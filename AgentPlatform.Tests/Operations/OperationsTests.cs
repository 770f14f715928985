using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using AgentPlatform.Tests.Infrastructure;

namespace AgentPlatform.Tests.Operations;

[Collection(PlatformCollection.Name)]
public sealed class OperationsTests(PlatformFixture platform)
{
    [Fact]
    public async Task Health_reports_every_dependency_and_the_worker_heartbeat()
    {
        var response = await platform.Client().GetAsync("/health");
        var health = await response.JsonAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("healthy", health["status"]!.GetValue<string>());
        Assert.NotNull(health["timestamp"]);
        Assert.NotNull(health["version"]);
        var checks = health["checks"]!.AsObject();
        Assert.Equal("healthy", checks["postgres"]!.GetValue<string>());
        Assert.Equal("healthy", checks["redis"]!.GetValue<string>());
        Assert.Equal("healthy", checks["worker"]!.GetValue<string>());
        Assert.Equal("healthy", checks["llm"]!.GetValue<string>());
        Assert.Equal("not_configured", checks["qdrant"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.OK, (await platform.Client().GetAsync("/alive")).StatusCode);
    }

    [Fact]
    public async Task A_stopped_redis_makes_health_unhealthy_and_requests_503_until_it_returns()
    {
        await using var redis = await RedisServer.StartAsync();
        var api = platform.StartExtraApi(redis: redis.ConnectionString);
        var key = await platform.CreateKeyAsync("pro");
        var client = PlatformFixture.ClientFor(api, key);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health")).StatusCode);

        await redis.StopAsync();
        var down = await client.GetAsync("/health");
        var refused = await client.ExecuteAsync(new { task = "while redis is down" });

        Assert.Equal(HttpStatusCode.ServiceUnavailable, down.StatusCode);
        var health = await down.JsonAsync();
        Assert.Equal("unhealthy", health["status"]!.GetValue<string>());
        Assert.Equal("unhealthy", health["checks"]!["redis"]!.GetValue<string>());
        Assert.Equal("healthy", health["checks"]!["postgres"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal("application/problem+json", refused.Content.Headers.ContentType!.MediaType);
        Assert.NotNull(refused.Headers.RetryAfter);

        await redis.StartAgainAsync();
        await HttpExtensions.WaitUntilAsync(async () => (await client.GetAsync("/health")).StatusCode == HttpStatusCode.OK,
            seconds: 60, what: "health to recover");
        Assert.Equal(HttpStatusCode.OK, (await client.ExecuteAsync(new { task = "after redis is back" })).StatusCode);
    }

    [Fact]
    public async Task A_stopped_worker_makes_health_degraded_not_unhealthy()
    {
        await platform.Worker.KillAsync();
        try
        {
            await HttpExtensions.WaitUntilAsync(async () =>
                (await (await platform.Client().GetAsync("/health")).JsonAsync())["checks"]!["worker"]!.GetValue<string>() == "degraded",
                what: "the worker heartbeat to go stale");
            var response = await platform.Client().GetAsync("/health");

            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("degraded", (await response.JsonAsync())["status"]!.GetValue<string>());
        }
        finally
        {
            await platform.Worker.StartAsync();
        }
    }

    [Fact]
    public async Task Metrics_expose_request_counts_and_durations_by_agent_and_status()
    {
        var client = platform.Client(await platform.CreateKeyAsync());
        var executed = await client.ExecuteAsync(new { task = "count me", agent_type = "research" });

        var metrics = await platform.Client(PlatformFixture.AdminKey).GetStringAsync("/metrics");

        Assert.Equal(HttpStatusCode.OK, executed.StatusCode);
        Assert.Matches("""agent_requests_total\{[^}]*agent="research"[^}]*status="completed"[^}]*\} [1-9]""", metrics);
        Assert.Contains("agent_request_duration_seconds_bucket{", metrics);
        Assert.Contains("agent_llm_tokens_total{", metrics);
        Assert.Matches("""agent_task_queue_depth\{[^}]*priority="high"[^}]*\} \d+""", metrics);
    }

    [Fact]
    public async Task Metrics_need_the_admin_key_unless_anonymous_scraping_is_allowed()
    {
        var anonymous = await platform.Client().GetAsync("/metrics");
        var client = await platform.Client(await platform.CreateKeyAsync()).GetAsync("/metrics");
        var admin = await platform.Client(PlatformFixture.AdminKey).GetAsync("/metrics");
        var open = platform.StartExtraApi(overrides: new Dictionary<string, string> { ["Metrics__AllowAnonymous"] = "true" });
        var scraped = await PlatformFixture.ClientFor(open, null).GetAsync("/metrics");

        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.DoesNotContain("agent_cost_usd_total", await anonymous.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.Forbidden, client.StatusCode);
        Assert.Equal(HttpStatusCode.OK, admin.StatusCode);
        Assert.Contains("agent_task_queue_depth", await admin.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, scraped.StatusCode);
    }

    [Fact]
    public async Task Anonymous_health_shows_each_checks_status_but_not_the_llm_endpoint_or_model()
    {
        var anonymous = await platform.Client().GetStringAsync("/health");
        var admin = await platform.Client(PlatformFixture.AdminKey).GetStringAsync("/health");

        var llm = JsonNode.Parse(anonymous)!["details"]!["llm"]!;
        Assert.Equal("healthy", llm["status"]!.GetValue<string>());
        Assert.False(llm["offline"]!.GetValue<bool>());
        Assert.Null(llm["description"]);
        Assert.DoesNotContain(platform.Llm.BaseUrl, anonymous);
        Assert.DoesNotContain(PlatformFixture.Model, anonymous);
        Assert.Equal("healthy", JsonNode.Parse(anonymous)!["details"]!["postgres"]!["status"]!.GetValue<string>());
        // The admin still sees what is configured.
        Assert.Contains(platform.Llm.BaseUrl, JsonNode.Parse(admin)!["details"]!["llm"]!["description"]!.GetValue<string>());
    }

    [Fact]
    public async Task Docs_and_the_openapi_document_are_served_without_a_key()
    {
        var docs = await platform.Client().GetAsync("/docs");
        var openApi = await platform.Client().GetFromJsonAsync<JsonObject>("/openapi/v1.json");

        Assert.Equal(HttpStatusCode.OK, docs.StatusCode);
        Assert.Equal("text/html", docs.Content.Headers.ContentType!.MediaType);
        var paths = openApi!["paths"]!.AsObject();
        Assert.True(paths.ContainsKey("/agent/execute"));
        Assert.True(paths.ContainsKey("/agent/status/{taskId}"));
        Assert.True(paths.ContainsKey("/admin/keys"));
    }

    [Fact]
    public async Task The_hangfire_dashboard_is_for_the_admin_only()
    {
        Assert.Equal(HttpStatusCode.Unauthorized, (await platform.Client().GetAsync("/hangfire")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await platform.Client(await platform.CreateKeyAsync()).GetAsync("/hangfire")).StatusCode);
        var admin = await platform.Client(PlatformFixture.AdminKey).GetAsync("/hangfire");
        Assert.Equal(HttpStatusCode.OK, admin.StatusCode);
        Assert.Contains("Hangfire", await admin.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Agents_are_listed_with_their_model()
    {
        var client = platform.Client(await platform.CreateKeyAsync());

        var agents = await client.GetFromJsonAsync<JsonArray>("/agents");
        var code = await client.GetFromJsonAsync<JsonObject>("/agents/code");
        var missing = await client.GetAsync("/agents/nobody");

        Assert.Subset(agents!.Select(a => a!["name"]!.GetValue<string>()).ToHashSet(), new HashSet<string> { "code", "general", "math", "research", "writer" });
        Assert.Equal(PlatformFixture.Model, code!["model"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }
}
