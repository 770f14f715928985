using System.Diagnostics;
using System.Net;
using AgentPlatform.Tests.Infrastructure;

namespace AgentPlatform.Tests.Tasks;

[Collection(PlatformCollection.Name)]
public sealed class ResilienceTests(PlatformFixture platform)
{
    [Fact]
    public async Task A_task_survives_the_worker_being_killed_mid_task_and_completes_once()
    {
        // The first call hangs (the worker dies during it); the retry after restart answers.
        platform.Llm.Script("kill-worker", new LlmStep(Delay: TimeSpan.FromSeconds(60)), new LlmStep(Content: "finished after restart"));
        var client = platform.Client(await platform.CreateKeyAsync());
        var taskId = (await (await client.ExecuteAsync(new { task = "kill-worker job", agent_type = "general", async_execution = true })).JsonAsync())["task_id"]!.GetValue<string>();
        await HttpExtensions.WaitUntilAsync(() => Task.FromResult(platform.Llm.CallsFor("kill-worker").Count == 1), what: "the first LLM call");

        await platform.Worker.KillAsync();
        Assert.Equal("running", (await client.StatusAsync(taskId))["status"]!.GetValue<string>());
        await platform.Worker.StartAsync();
        var final = await client.WaitForFinalAsync(taskId, seconds: 60);

        Assert.Equal("completed", final["status"]!.GetValue<string>());
        Assert.Equal("finished after restart", final["result"]!.GetValue<string>());
        Assert.Equal(2, final["attempts"]!.GetValue<int>());
        // Exactly one LLM answer was produced and recorded: the killed call never completed.
        Assert.Single(platform.Llm.CallsFor("kill-worker"), c => c.Completed);
    }

    [Fact]
    public async Task On_graceful_shutdown_a_running_task_goes_back_to_the_queue_and_runs_again()
    {
        platform.Llm.Script("graceful-stop", new LlmStep(Delay: TimeSpan.FromSeconds(60)), new LlmStep(Content: "ran again"));
        var client = platform.Client(await platform.CreateKeyAsync());
        var taskId = (await (await client.ExecuteAsync(new { task = "graceful-stop job", agent_type = "general", async_execution = true })).JsonAsync())["task_id"]!.GetValue<string>();
        await HttpExtensions.WaitUntilAsync(() => Task.FromResult(platform.Llm.CallsFor("graceful-stop").Count == 1), what: "the first LLM call");

        await platform.Worker.StopGracefullyAsync();
        var afterStop = await client.StatusAsync(taskId);
        await platform.Worker.StartAsync();
        var final = await client.WaitForFinalAsync(taskId, seconds: 60);

        Assert.Equal("queued", afterStop["status"]!.GetValue<string>());
        Assert.Equal("completed", final["status"]!.GetValue<string>());
        Assert.Equal("ran again", final["result"]!.GetValue<string>());
    }

    [Fact]
    public async Task An_async_task_waits_in_the_queue_while_no_worker_runs()
    {
        var client = platform.Client(await platform.CreateKeyAsync());
        await platform.Worker.KillAsync();
        try
        {
            var taskId = (await (await client.ExecuteAsync(new { task = "nobody home", async_execution = true, priority = "low" })).JsonAsync())["task_id"]!.GetValue<string>();
            var waiting = await client.StatusAsync(taskId, wait: 2);
            Assert.Equal("queued", waiting["status"]!.GetValue<string>());

            await platform.Worker.StartAsync();
            Assert.Equal("completed", (await client.WaitForFinalAsync(taskId))["status"]!.GetValue<string>());
        }
        finally
        {
            if (!platform.Worker.IsRunning) await platform.Worker.StartAsync();
        }
    }

    [Fact]
    public async Task Provider_5xx_is_retried_with_backoff_then_the_async_task_fails_with_the_error()
    {
        platform.Llm.Script("always-500", new LlmStep(Status: 500));
        var client = platform.Client(await platform.CreateKeyAsync());
        var taskId = (await (await client.ExecuteAsync(new { task = "always-500 please", agent_type = "general", async_execution = true })).JsonAsync())["task_id"]!.GetValue<string>();

        var final = await client.WaitForFinalAsync(taskId);

        Assert.Equal("failed", final["status"]!.GetValue<string>());
        Assert.Contains("The provider answered 500 (server error).", final["error"]!.GetValue<string>());
        // The provider's own words (its error body) stay in logs and traces.
        Assert.DoesNotContain("scripted failure", final.ToJsonString());
        Assert.Equal("The provider answered 500 (server error).", final["runs"]![0]!["attempts"]![0]!["error"]!.GetValue<string>());
        Assert.Equal(3, platform.Llm.CallsFor("always-500").Count); // 1 + Llm:MaxRetries (2)
    }

    [Fact]
    public async Task A_transient_5xx_is_retried_and_the_sync_request_still_succeeds()
    {
        platform.Llm.Script("flaky-503", new LlmStep(Status: 503), new LlmStep(Content: "recovered"));
        var client = platform.Client(await platform.CreateKeyAsync());

        var response = await client.ExecuteAsync(new { task = "flaky-503 please", agent_type = "general" });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("recovered", (await response.JsonAsync())["result"]!.GetValue<string>());
        Assert.Equal(2, platform.Llm.CallsFor("flaky-503").Count(c => !c.Completed));
    }

    [Fact]
    public async Task A_sync_task_whose_provider_keeps_failing_is_a_502_problem_with_the_task_id()
    {
        platform.Llm.Script("sync-500", new LlmStep(Status: 500));
        var client = platform.Client(await platform.CreateKeyAsync());

        var response = await client.ExecuteAsync(new { task = "sync-500 please", agent_type = "general" });

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        var problem = await response.JsonAsync();
        var taskId = problem["task_id"]!.GetValue<string>();
        Assert.Equal("failed", (await client.StatusAsync(taskId))["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task The_request_the_worker_job_and_the_llm_call_share_one_trace()
    {
        var client = platform.Client(await platform.CreateKeyAsync());
        var traceId = ActivityTraceId.CreateRandom();
        // The client's own span: its HttpClient sends this trace in the traceparent header.
        using var clientSpan = new Activity("client").SetParentId(traceId, ActivitySpanId.CreateRandom(), ActivityTraceFlags.Recorded).Start();

        var accepted = await client.ExecuteAsync(new { task = "trace-me through the worker", agent_type = "general", async_execution = true });
        var taskId = (await accepted.JsonAsync())["task_id"]!.GetValue<string>();
        await client.WaitForFinalAsync(taskId);

        var call = Assert.Single(platform.Llm.Calls, c => !c.Completed && c.UserMessage.Contains("trace-me"));
        Assert.NotNull(call.TraceParent);
        Assert.Equal(traceId.ToString(), call.TraceParent!.Split('-')[1]);
    }
}
