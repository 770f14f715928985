using System.Net.Http.Json;
using System.Text.Json;
using AgentPlatform.Tests.Infrastructure;

namespace AgentPlatform.AppHost.Tests;

/// <summary>
/// Azure Container Apps starts the Api and the Worker without waiting for their stores (azd does not honour WaitFor).
/// Here the AppHost starts them while Postgres and Redis are down: they must keep running, report it, and recover.
/// </summary>
public sealed class StoresLateTests
{
    [Fact]
    public async Task Api_and_worker_started_before_postgres_and_redis_recover_by_themselves()
    {
        await using var postgres = await PostgresServer.StartAsync();
        var database = await postgres.CreateDatabaseAsync("agentdb");
        await using var redis = await RedisServer.StartAsync();
        await postgres.StopAsync();
        await redis.StopAsync();

        var appHost = await DistributedApplicationTestingBuilder.CreateAsync<Projects.AgentPlatform_AppHost>(
        [
            $"ConnectionStrings:redis={redis.ConnectionString}",
            $"ConnectionStrings:agentdb={database}",
            $"Auth:AdminKey={AppHostFixture.AdminKey}",
        ]);
        await using var app = await appHost.BuildAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await app.StartAsync(timeout.Token);
        await app.ResourceNotifications.WaitForResourceAsync("api", KnownResourceStates.Running, timeout.Token);
        using var client = app.CreateHttpClient("api", "http");
        client.DefaultRequestHeaders.Authorization = new("Bearer", AppHostFixture.AdminKey);

        // The Api answers: unhealthy, naming the missing stores, and a clear 503 for work.
        var health = await WaitForAsync(client, "/health", r => r.StatusCode == HttpStatusCode.ServiceUnavailable, timeout.Token);
        var checks = (await health.Content.ReadFromJsonAsync<JsonElement>(timeout.Token)).GetProperty("checks");
        Assert.Equal("unhealthy", checks.GetProperty("postgres").GetString());
        Assert.Equal("unhealthy", checks.GetProperty("redis").GetString());
        using var refused = await client.PostAsJsonAsync("/agent/execute", new { task = "too early" }, timeout.Token);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.True(refused.Headers.RetryAfter is not null, "a 503 says when to retry");

        // Some seconds of outage: nothing crashes or gives up.
        await Task.Delay(TimeSpan.FromSeconds(8), timeout.Token);
        foreach (var name in new[] { "api", "worker" })
        {
            Assert.True(app.ResourceNotifications.TryGetCurrentState(name, out var state), name);
            Assert.Equal(KnownResourceStates.Running, state.Snapshot.State?.Text);
        }

        await postgres.StartAgainAsync();
        await redis.StartAgainAsync();

        await WaitForAsync(client, "/health", r => r.StatusCode == HttpStatusCode.OK, timeout.Token);
        using var accepted = await client.PostAsJsonAsync("/agent/execute",
            new { task = "Run after the outage", agent_type = "general", async_execution = true }, timeout.Token);
        Assert.True(accepted.StatusCode == HttpStatusCode.Accepted, await accepted.Content.ReadAsStringAsync(timeout.Token));
        var taskId = (await accepted.Content.ReadFromJsonAsync<JsonElement>(timeout.Token)).GetProperty("task_id").GetString();
        var status = await client.GetFromJsonAsync<JsonElement>($"/agent/status/{taskId}?wait=60", timeout.Token);
        Assert.Equal("completed", status.GetProperty("status").GetString());
    }

    private static async Task<HttpResponseMessage> WaitForAsync(HttpClient client, string path, Func<HttpResponseMessage, bool> done,
        CancellationToken cancellationToken)
    {
        while (true)
        {
            try
            {
                var response = await client.GetAsync(path, cancellationToken);
                if (done(response)) return response;
                response.Dispose();
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            await Task.Delay(500, cancellationToken);
        }
    }
}
