using System.Net.Http.Json;
using System.Diagnostics;
using System.Net;
using AgentPlatform.Engine.Data;
using AgentPlatform.Engine.Tasks;
using AgentPlatform.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;
using TaskStatus = AgentPlatform.Engine.Tasks.TaskStatus;

namespace AgentPlatform.Tests.Tasks;

/// <summary>A task runs once while its run lives, is handed on when it dies, and never loops or hangs.</summary>
[Collection(PlatformCollection.Name)]
public sealed class ExactlyOnceTests(PlatformFixture platform, ITestOutputHelper output)
{
    private async Task<Guid> StoreQueuedTaskAsync(string input, Action<AgentTask>? change = null)
    {
        using var scope = platform.Api.Services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<AgentDbContext>();
        var task = new AgentTask
        {
            Id = Guid.CreateVersion7(), ApiKeyId = Guid.Empty, Agent = "general", Input = input, IsAsync = true,
            Status = TaskStatus.Queued, CreatedAt = DateTimeOffset.UtcNow,
        };
        change?.Invoke(task);
        db.Tasks.Add(task);
        await db.SaveChangesAsync();
        return task.Id;
    }

    private async Task<AgentTask?> RunInProcessAsync(Guid taskId)
    {
        await using var scope = platform.Api.Services.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<TaskRunner>().RunAsync(taskId, CancellationOutcome.Requeue, CancellationToken.None);
    }

    private async Task<AgentTask> LoadAsync(Guid taskId)
    {
        await using var scope = platform.Api.Services.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<AgentDbContext>().Tasks.AsNoTracking().FirstAsync(t => t.Id == taskId);
    }

    [Fact]
    public async Task A_second_run_of_the_same_task_backs_off_while_the_first_holds_its_lease()
    {
        // Two runners at once: a Hangfire retry, a re-fetched job, or the duplicate job of an Api that died mid-enqueue.
        platform.Llm.Script("twice-claimed", new LlmStep(Delay: TimeSpan.FromSeconds(2), Content: "ran once"));
        var taskId = await StoreQueuedTaskAsync("twice-claimed task");

        var first = RunInProcessAsync(taskId);
        await HttpExtensions.WaitUntilAsync(() => Task.FromResult(platform.Llm.CallsFor("twice-claimed").Count == 1), what: "the first call");
        var second = await RunInProcessAsync(taskId);

        Assert.Equal(TaskStatus.Running, second!.Status); // it saw the live run and left
        Assert.Equal(TaskStatus.Completed, (await first)!.Status);
        Assert.Single(platform.Llm.CallsFor("twice-claimed"), c => !c.Completed);
        Assert.Equal(1, (await LoadAsync(taskId)).Attempts);
    }

    [Fact]
    public async Task Results_written_together_still_finish_each_task_once_and_only_by_the_run_holding_it()
    {
        // Running under one run's lease; a second run (one whose lease lapsed and was taken over) finishes at the same time,
        // among the results of other runs, so the two share write batches.
        var owner = Guid.NewGuid();
        var taskId = await StoreQueuedTaskAsync("raced result task", t => (t.Status, t.Attempts, t.LeaseOwner) = (TaskStatus.Running, 1, owner));
        var others = new List<AgentTask>();
        for (var i = 0; i < 20; i++)
        {
            var other = Guid.NewGuid();
            var id = await StoreQueuedTaskAsync($"batched result task {i}", t => (t.Status, t.Attempts, t.LeaseOwner) = (TaskStatus.Running, 1, other));
            others.Add(Finished(id, other, $"other {i}"));
        }
        var results = platform.Api.Services.GetRequiredService<TaskResults>();

        var stale = results.RecordAsync(Finished(taskId, Guid.NewGuid(), "stale run"));
        var holder = results.RecordAsync(Finished(taskId, owner, "holding run"));
        var rest = others.Select(results.RecordAsync).ToList();

        Assert.False(await stale);
        Assert.True(await holder);
        Assert.All(await Task.WhenAll(rest), Assert.True);
        var task = await LoadAsync(taskId);
        Assert.Equal((TaskStatus.Completed, "holding run", owner), (task.Status, task.Result, task.LeaseOwner));
        Assert.Null(task.LeaseExpiresAt);
        Assert.Equal("other 7", (await LoadAsync(others[7].Id)).Result);
        // The same run again (a retried write whose acknowledgement was lost) changes nothing: the task is final.
        Assert.False(await results.RecordAsync(Finished(taskId, owner, "again")));
        Assert.Equal("holding run", (await LoadAsync(taskId)).Result);

        static AgentTask Finished(Guid id, Guid owner, string result) => new()
        {
            Id = id, Agent = "general", Input = "", Status = TaskStatus.Completed, Result = result, Attempts = 1, LeaseOwner = owner,
            Strategy = "single", CacheOutcome = "miss", CompletedAt = DateTimeOffset.UtcNow, DurationMs = 1,
            RoutingJson = "{\"decision\": null}",
        };
    }

    [Fact]
    public async Task A_run_whose_lease_expired_is_taken_over_by_the_sweep()
    {
        platform.Llm.Script("lease-expired", new LlmStep(Content: "taken over"));
        // As a Worker that died mid-run leaves it: running, its lease lapsed, one attempt used.
        var taskId = await StoreQueuedTaskAsync("lease-expired task", t =>
        {
            t.Status = TaskStatus.Running;
            t.Attempts = 1;
            t.StartedAt = DateTimeOffset.UtcNow.AddSeconds(-20);
            t.LeaseOwner = Guid.NewGuid();
            t.LeaseExpiresAt = DateTimeOffset.UtcNow.AddSeconds(-10);
        });

        var final = await platform.Client(PlatformFixture.AdminKey).WaitForFinalAsync(taskId.ToString(), seconds: 20);

        Assert.Equal("completed", final["status"]!.GetValue<string>());
        Assert.Equal("taken over", final["result"]!.GetValue<string>());
        Assert.Equal(2, final["attempts"]!.GetValue<int>());
    }

    [Fact]
    public async Task A_task_out_of_attempts_fails_with_a_clear_error_instead_of_looping()
    {
        platform.Llm.Script("no-attempts-left", new LlmStep(Content: "must not run"));
        var taskId = await StoreQueuedTaskAsync("no-attempts-left task", t =>
        {
            t.Status = TaskStatus.Running;
            t.Attempts = 3; // Queue:MaxAttempts
            t.LeaseOwner = Guid.NewGuid();
            t.LeaseExpiresAt = DateTimeOffset.UtcNow.AddSeconds(-1);
        });

        var final = await platform.Client(PlatformFixture.AdminKey).WaitForFinalAsync(taskId.ToString(), seconds: 20);

        Assert.Equal("failed", final["status"]!.GetValue<string>());
        Assert.Contains("Gave up after 3 attempts", final["error"]!.GetValue<string>());
        Assert.Empty(platform.Llm.CallsFor("no-attempts-left"));
    }

    [Fact]
    public async Task A_queued_task_of_a_key_revoked_since_fails_without_running()
    {
        platform.Llm.Script("revoked-queued", new LlmStep(Content: "must not run"));
        var admin = platform.Client(PlatformFixture.AdminKey);
        var created = await (await admin.PostAsJsonAsync("/admin/keys", new { name = "revoked-later", tier = "pro" })).JsonAsync();
        var keyId = Guid.Parse(created["id"]!.GetValue<string>());
        var taskId = await StoreQueuedTaskAsync("revoked-queued task", t => t.ApiKeyId = keyId);
        await admin.DeleteAsync($"/admin/keys/{keyId}");

        var task = await RunInProcessAsync(taskId);

        Assert.Equal(TaskStatus.Failed, task!.Status);
        Assert.Contains("revoked", task.Error);
        Assert.Empty(platform.Llm.CallsFor("revoked-queued"));
    }

    [Fact]
    public async Task A_queued_task_of_a_key_revoked_while_its_caller_was_cached_fails_without_running()
    {
        platform.Llm.Script("revoked-cached", new LlmStep(Content: "must not run"));
        var admin = platform.Client(PlatformFixture.AdminKey);
        var created = await (await admin.PostAsJsonAsync("/admin/keys", new { name = "revoked-while-cached", tier = "pro" })).JsonAsync();
        var keyId = Guid.Parse(created["id"]!.GetValue<string>());
        var callers = platform.Api.Services.GetRequiredService<TaskCallers>();
        // The cache is trusted only while its listener is connected; a task of the key caches its caller. (A fixture just
        // started may not have its Redis connection yet: such a run is handed back to the queue, and another one tried.)
        await HttpExtensions.WaitUntilAsync(async () =>
        {
            try
            {
                var ran = await RunInProcessAsync(await StoreQueuedTaskAsync("cached caller task", t => t.ApiKeyId = keyId));
                Assert.Equal(TaskStatus.Completed, ran!.Status);
            }
            catch (AgentPlatform.Engine.Admission.SpendUnavailableException)
            {
                return false;
            }
            return callers.Caches(keyId);
        }, what: "the key's caller cached");
        var taskId = await StoreQueuedTaskAsync("revoked-cached task", t => t.ApiKeyId = keyId);

        await admin.DeleteAsync($"/admin/keys/{keyId}");
        await HttpExtensions.WaitUntilAsync(() => Task.FromResult(!callers.Caches(keyId)), seconds: 10, what: "the revocation's signal");
        var task = await RunInProcessAsync(taskId);

        Assert.Equal(TaskStatus.Failed, task!.Status);
        Assert.Contains("revoked", task.Error);
        Assert.Empty(platform.Llm.CallsFor("revoked-cached"));
    }

    [Fact]
    public async Task A_queued_task_whose_job_can_no_longer_start_it_gets_a_new_job()
    {
        platform.Llm.Script("stranded-job", new LlmStep(Content: "rescued"));
        // Queued long enough ago (Queue:StrandedAfter is 15 s in the tests), with a job Hangfire does not have.
        var taskId = await StoreQueuedTaskAsync("stranded-job task", t =>
        {
            t.JobId = "987654321";
            t.CreatedAt = DateTimeOffset.UtcNow.AddMinutes(-1);
        });

        var final = await platform.Client(PlatformFixture.AdminKey).WaitForFinalAsync(taskId.ToString(), seconds: 20);

        Assert.Equal("completed", final["status"]!.GetValue<string>());
        Assert.Equal("rescued", final["result"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_sync_task_whose_api_died_fails_by_its_lease_not_after_thirty_minutes()
    {
        var taskId = await StoreQueuedTaskAsync("abandoned sync task", t =>
        {
            t.IsAsync = false;
            t.Status = TaskStatus.Running;
            t.Attempts = 1;
            t.StartedAt = DateTimeOffset.UtcNow.AddSeconds(-5);
            t.LeaseOwner = Guid.NewGuid();
            t.LeaseExpiresAt = DateTimeOffset.UtcNow.AddSeconds(-1);
        });

        await HttpExtensions.WaitUntilAsync(async () => (await LoadAsync(taskId)).IsFinal, seconds: 15, what: "the sweep");

        var task = await LoadAsync(taskId);
        Assert.Equal(TaskStatus.Failed, task.Status);
        Assert.Equal(QueueMaintenanceJob.AbandonedSync, task.Error);
    }

    [Fact]
    public async Task A_long_sync_run_that_renews_its_lease_is_not_swept()
    {
        // Longer than the lease (3 s in the tests) and than several sweeps: the run renews it and keeps its task.
        platform.Llm.Script("long-sync", new LlmStep(Delay: TimeSpan.FromSeconds(8), Content: "still mine"));
        var client = platform.Client(await platform.CreateKeyAsync());

        using var response = await client.ExecuteAsync(new { task = "long-sync run", agent_type = "general" });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("still mine", (await response.JsonAsync())["result"]!.GetValue<string>());
    }

    [Fact]
    public async Task Cancelling_a_running_sync_task_stored_first_stops_its_llm_call_within_about_a_second()
    {
        platform.Llm.Script("cancel-sync", new LlmStep(Delay: TimeSpan.FromSeconds(20), Content: "too late"));
        var key = await platform.CreateKeyAsync();
        var client = platform.Client(key);

        // With an Idempotency-Key a sync task is stored before it runs, so it can be found and cancelled while it runs.
        var request = client.ExecuteAsync(new { task = "cancel-sync run", agent_type = "general" }, idempotencyKey: Guid.NewGuid().ToString());
        await HttpExtensions.WaitUntilAsync(() => Task.FromResult(platform.Llm.CallsFor("cancel-sync").Count == 1), what: "the LLM call");
        Guid taskId;
        await using (var scope = platform.Api.Services.CreateAsyncScope())
        {
            taskId = await scope.ServiceProvider.GetRequiredService<AgentDbContext>().Tasks
                .Where(t => t.Input == "cancel-sync run").Select(t => t.Id).SingleAsync();
        }
        var clock = Stopwatch.StartNew();
        using var cancel = await client.PostAsync($"/agent/tasks/{taskId}/cancel", null);
        using var response = await request;
        clock.Stop();

        Assert.Equal(HttpStatusCode.OK, cancel.StatusCode);
        Assert.Equal((HttpStatusCode)499, response.StatusCode);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"the sync request ended {clock.Elapsed.TotalSeconds:0.0} s after the cancel");
        Assert.DoesNotContain(platform.Llm.CallsFor("cancel-sync"), c => c.Completed);
        Assert.Equal("cancelled", (await client.StatusAsync(taskId.ToString()))["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_plain_sync_task_is_stored_after_it_finishes_and_readable_at_once()
    {
        platform.Llm.Script("behind-sync", new LlmStep(Delay: TimeSpan.FromSeconds(1), Content: "written behind"));
        var client = platform.Client(await platform.CreateKeyAsync());

        var request = client.ExecuteAsync(new { task = "behind-sync run", agent_type = "general" });
        await HttpExtensions.WaitUntilAsync(() => Task.FromResult(platform.Llm.CallsFor("behind-sync").Count == 1), what: "the LLM call");
        // Running: no row yet (the request does not wait for Postgres before or after the LLM call).
        Assert.False(await StoredAsync("behind-sync run"));

        using var response = await request;
        var body = await response.JsonAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        // Readable at once on this instance, from the batch not yet written or from Postgres.
        var status = await client.StatusAsync(body["task_id"]!.GetValue<string>());
        Assert.Equal("completed", status["status"]!.GetValue<string>());
        Assert.Equal("written behind", status["result"]!.GetValue<string>());
        // And in Postgres one write later.
        await HttpExtensions.WaitUntilAsync(() => StoredAsync("behind-sync run"), 5, "the task's row");
        var stored = await LoadAsync(Guid.Parse(body["task_id"]!.GetValue<string>()));
        Assert.Equal(TaskStatus.Completed, stored.Status);
        Assert.Equal("written behind", stored.Result);
        Assert.Null(stored.LeaseOwner);
    }

    [Fact]
    public async Task A_plain_sync_task_whose_client_goes_away_stops_its_llm_call_and_is_stored_cancelled()
    {
        platform.Llm.Script("gone-sync", new LlmStep(Delay: TimeSpan.FromSeconds(20), Content: "too late"));
        var client = platform.Client(await platform.CreateKeyAsync());

        using var gone = new CancellationTokenSource();
        var request = client.ExecuteAsync(new { task = "gone-sync run", agent_type = "general" }, cancellationToken: gone.Token);
        await HttpExtensions.WaitUntilAsync(() => Task.FromResult(platform.Llm.CallsFor("gone-sync").Count == 1), what: "the LLM call");
        await gone.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => request);

        await HttpExtensions.WaitUntilAsync(() => StoredAsync("gone-sync run"), 10, "the cancelled task's row");
        await using var scope = platform.Api.Services.CreateAsyncScope();
        var stored = await scope.ServiceProvider.GetRequiredService<AgentDbContext>().Tasks.AsNoTracking().SingleAsync(t => t.Input == "gone-sync run");
        Assert.Equal(TaskStatus.Cancelled, stored.Status);
        Assert.DoesNotContain(platform.Llm.CallsFor("gone-sync"), c => c.Completed);
    }

    private async Task<bool> StoredAsync(string input)
    {
        await using var scope = platform.Api.Services.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<AgentDbContext>().Tasks.AnyAsync(t => t.Input == input);
    }

    [Fact]
    public async Task A_cancelled_task_records_what_its_answered_calls_cost()
    {
        // A tool loop: the first call is answered (a tool call, 100 + 50 tokens), the second hangs until the cancel.
        platform.Llm.Script("cancel-spent",
            new LlmStep(ToolCalls: [new ToolCallStep("calculator", """{"expression":"6*7"}""")]),
            new LlmStep(Delay: TimeSpan.FromSeconds(30)));
        var client = platform.Client(await platform.CreateKeyAsync());
        var taskId = (await (await client.ExecuteAsync(new { task = "cancel-spent run", agent_type = "math", async_execution = true }))
            .JsonAsync())["task_id"]!.GetValue<string>();
        await HttpExtensions.WaitUntilAsync(() => Task.FromResult(platform.Llm.CallsFor("cancel-spent").Count(c => !c.Completed) == 2),
            what: "the second call");

        using var cancel = await client.PostAsync($"/agent/tasks/{taskId}/cancel", null);
        await HttpExtensions.WaitUntilAsync(async () => (await client.StatusAsync(taskId))["cost_usd"] is not null, seconds: 5,
            what: "the spend to be recorded");
        var status = await client.StatusAsync(taskId);

        Assert.Equal("cancelled", status["status"]!.GetValue<string>());
        Assert.Equal(100, status["usage"]!["prompt_tokens"]!.GetValue<int>());
        Assert.Equal(50, status["usage"]!["completion_tokens"]!.GetValue<int>());
        Assert.True(status["cost_usd"]!.GetValue<decimal>() > 0);
    }

    [Fact]
    public async Task A_killed_workers_task_is_taken_over_within_seconds_even_with_a_long_invisibility_timeout()
    {
        // Hangfire would hand the dead Worker's job out again only after Queue:InvisibilityTimeout (5 min here).
        var settings = platform.Settings();
        settings["Queue__InvisibilityTimeout"] = "00:05:00";
        await platform.Worker.KillAsync();
        var worker = new WorkerProcess(settings);
        try
        {
            await worker.StartAsync();
            platform.Llm.Script("kill-takeover", new LlmStep(Delay: TimeSpan.FromSeconds(60)), new LlmStep(Content: "after the kill"));
            var client = platform.Client(await platform.CreateKeyAsync());
            var taskId = (await (await client.ExecuteAsync(new { task = "kill-takeover job", agent_type = "general", async_execution = true }))
                .JsonAsync())["task_id"]!.GetValue<string>();
            await HttpExtensions.WaitUntilAsync(() => Task.FromResult(platform.Llm.CallsFor("kill-takeover").Count == 1), what: "the first call");

            await worker.KillAsync();
            var clock = Stopwatch.StartNew();
            await worker.StartAsync();
            var final = await client.WaitForFinalAsync(taskId, seconds: 60);
            output.WriteLine($"taken over and finished {clock.Elapsed.TotalSeconds:0.0} s after the kill");

            Assert.Equal("completed", final["status"]!.GetValue<string>());
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"took {clock.Elapsed}");
            Assert.Equal(2, final["attempts"]!.GetValue<int>());
        }
        finally
        {
            await worker.DisposeAsync();
            await platform.Worker.StartAsync();
        }
    }
}
