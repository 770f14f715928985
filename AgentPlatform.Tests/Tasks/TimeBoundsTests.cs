using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using AgentPlatform.Engine.Llm;
using AgentPlatform.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace AgentPlatform.Tests.Tasks;

/// <summary>A hung provider or a slow agent ends within the configured time, with an answer that says so.</summary>
[Collection(PlatformCollection.Name)]
public sealed class TimeBoundsTests(PlatformFixture platform)
{
    [Fact]
    public void The_provider_http_client_has_no_timeout_of_its_own_that_would_cut_the_retries_short()
    {
        var client = platform.Api.Services.GetRequiredService<IHttpClientFactory>().CreateClient(ChatClientPool.HttpClientPrefix + "default");

        Assert.Equal(Timeout.InfiniteTimeSpan, client.Timeout);
    }

    [Fact]
    public async Task A_hung_provider_is_given_up_after_the_total_timeout_whatever_the_retry_count()
    {
        platform.Llm.Script("hung-provider", new LlmStep(Delay: TimeSpan.FromMinutes(5)));
        var api = platform.StartExtraApi(configure: settings =>
        {
            settings["Llm__AttemptTimeout"] = "00:00:01";
            settings["Llm__MaxRetries"] = "10";
            settings["Llm__TotalTimeout"] = "00:00:02.500";
        });
        var client = PlatformFixture.ClientFor(api, await platform.CreateKeyAsync());

        var clock = Stopwatch.StartNew();
        using var response = await client.ExecuteAsync(new { task = "hung-provider call", agent_type = "general" });
        clock.Stop();

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(6));
        // One attempt per second until the total timeout: 2 or 3 of the 11 the retry count would allow.
        Assert.InRange(platform.Llm.CallsFor("hung-provider").Count, 2, 3);
    }

    [Fact]
    public async Task An_agent_past_its_time_limit_ends_with_504_sync_and_failed_async()
    {
        platform.Llm.Script("slow-agent", new LlmStep(Delay: TimeSpan.FromMinutes(5)));
        var admin = platform.Client(PlatformFixture.AdminKey);
        using (var stored = await admin.PutAsJsonAsync("/admin/agents/slowpoke", new
        {
            description = "An agent with a short time limit", system_prompt = "Answer.", model = PlatformFixture.Model, timeout_seconds = 2,
        }))
        {
            Assert.True(stored.IsSuccessStatusCode, await stored.Content.ReadAsStringAsync());
        }
        var client = platform.Client(await platform.CreateKeyAsync());

        var clock = Stopwatch.StartNew();
        using var sync = await client.ExecuteAsync(new { task = "slow-agent sync", agent_type = "slowpoke" });
        clock.Stop();
        var problem = await sync.JsonAsync();
        var taskId = (await (await client.ExecuteAsync(new { task = "slow-agent async", agent_type = "slowpoke", async_execution = true }))
            .JsonAsync())["task_id"]!.GetValue<string>();
        var final = await client.WaitForFinalAsync(taskId, seconds: 30);

        Assert.Equal(HttpStatusCode.GatewayTimeout, sync.StatusCode);
        Assert.Contains("time limit of 2 s", problem["detail"]!.GetValue<string>());
        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(5));
        Assert.Equal("failed", final["status"]!.GetValue<string>());
        Assert.Contains("time limit of 2 s", final["error"]!.GetValue<string>());
        Assert.Equal("timeout", final["runs"]![0]!["outcome"]!.GetValue<string>());
    }
}
