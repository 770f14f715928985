using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using AgentPlatform.Engine.Data;
using AgentPlatform.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;
using TaskStatus = AgentPlatform.Engine.Tasks.TaskStatus;

namespace AgentPlatform.Tests.Faults;

/// <summary>
/// Real processes, real faults: a Worker killed with SIGKILL under load, Redis and Postgres stopped under steady
/// traffic. Each test prints its figures (the README's "Guarantees" section quotes them).
/// </summary>
[Collection(PlatformCollection.Name)]
public sealed class FaultTests(PlatformFixture platform, ITestOutputHelper output)
{
    private async Task<HashSet<Guid>> RunningTasksAsync(string prefix)
    {
        await using var scope = platform.Api.Services.CreateAsyncScope();
        return (await scope.ServiceProvider.GetRequiredService<AgentDbContext>().Tasks.AsNoTracking()
            .Where(t => t.Status == TaskStatus.Running && t.Input.StartsWith(prefix)).Select(t => t.Id).ToListAsync()).ToHashSet();
    }

    /// <summary>A job's Hangfire state, whichever storage holds it (for the diagnosis of a failed test).</summary>
    private string JobState(string? jobId)
    {
        if (jobId is null) return "no job id";
        using var connection = platform.Api.Services.GetRequiredService<Hangfire.JobStorage>().GetConnection();
        return connection.GetStateData(jobId) is { } state ? $"state {state.Name}, {string.Join(", ", state.Data.Select(d => $"{d.Key} {d.Value}"))}" : "no job";
    }

    [Fact]
    public async Task Tasks_whose_jobs_a_Redis_restart_lost_are_enqueued_again_and_run_once()
    {
        const string prefix = "fault-lost-jobs";
        platform.Llm.Script(prefix, new LlmStep(Delay: TimeSpan.Zero));
        var client = platform.Client(await platform.CreateKeyAsync());
        List<string> ids = [];
        await platform.Worker.KillAsync();
        try
        {
            // Queued with no Worker to take them, so the jobs wait in Redis, which then restarts empty (no persistence).
            for (var i = 0; i < 5; i++)
            {
                using var response = await client.ExecuteAsync(new { task = $"{prefix} #{i} lost", agent_type = "general", async_execution = true });
                Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
                ids.Add((await response.JsonAsync())["task_id"]!.GetValue<string>());
            }
            await platform.Redis.StopAsync();
            await platform.Redis.StartAgainAsync();
        }
        finally
        {
            await platform.Worker.StartAsync();
        }

        // The maintenance sweep finds each queued task's job gone (Queue:StrandedAfter is 15 s here) and enqueues it again.
        var clock = Stopwatch.StartNew();
        var finals = new List<System.Text.Json.Nodes.JsonObject>();
        foreach (var id in ids) finals.Add(await client.WaitForFinalAsync(id, seconds: 90));
        output.WriteLine($"5 tasks whose jobs Redis lost completed {clock.Elapsed.TotalSeconds:0.0} s after the Worker started");

        Assert.All(finals, f => Assert.Equal("completed", f["status"]!.GetValue<string>()));
        Assert.Equal(5, platform.Llm.CallsFor(prefix).Count(c => !c.Completed));
        Assert.Equal(5, platform.Llm.CallsFor(prefix).Select(c => c.UserMessage).Distinct().Count());
    }

    [Fact]
    public async Task A_queued_task_cancelled_while_Redis_is_down_is_cancelled_and_never_runs()
    {
        const string prefix = "fault-cancel-redis";
        platform.Llm.Script(prefix, new LlmStep(Delay: TimeSpan.Zero));
        var client = platform.Client(await platform.CreateKeyAsync()); // enterprise: no limiter in the way
        string id;
        await platform.Worker.KillAsync();
        try
        {
            using (var response = await client.ExecuteAsync(new { task = $"{prefix} task", agent_type = "general", async_execution = true }))
                id = (await response.JsonAsync())["task_id"]!.GetValue<string>();
            await platform.Redis.StopAsync();
            try
            {
                // Cancelled in Postgres; the job cannot be looked at or deleted with Hangfire's storage away.
                using var cancel = await client.PostAsync($"/agent/tasks/{id}/cancel", null);
                Assert.Equal(HttpStatusCode.OK, cancel.StatusCode);
                Assert.Equal("cancelled", (await cancel.JsonAsync())["status"]!.GetValue<string>());
            }
            finally
            {
                await platform.Redis.StartAgainAsync();
            }
        }
        finally
        {
            await platform.Worker.StartAsync();
        }

        await Task.Delay(TimeSpan.FromSeconds(3)); // the Worker is up: a job left behind would have run by now
        Assert.Equal("cancelled", (await client.StatusAsync(id))["status"]!.GetValue<string>());
        Assert.Empty(platform.Llm.CallsFor(prefix));
    }

    [Fact]
    public async Task A_running_Worker_is_listed_again_after_Redis_restarts_empty()
    {
        var health = platform.Client();
        async Task<string> WorkerCheck() => (await (await health.GetAsync("/health")).JsonAsync())["checks"]!["worker"]!.GetValue<string>();
        await HttpExtensions.WaitUntilAsync(async () => await WorkerCheck() == "healthy", what: "the worker to be listed");

        await platform.Redis.StopAsync();
        await platform.Redis.StartAgainAsync();

        // Hangfire.Redis keeps the heartbeat but not the server list; the Worker announces itself again.
        await HttpExtensions.WaitUntilAsync(async () => await WorkerCheck() == "healthy", seconds: 20, what: "the worker to be listed again");
        var client = platform.Client(await platform.CreateKeyAsync());
        using var accepted = await client.ExecuteAsync(new { task = "after the restart", agent_type = "general", async_execution = true });
        var final = await client.WaitForFinalAsync((await accepted.JsonAsync())["task_id"]!.GetValue<string>());
        Assert.Equal("completed", final["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task Worker_killed_twice_under_300_tasks_every_task_ends_once_with_one_llm_call_plus_one_per_kill_it_was_in()
    {
        const int count = 320;
        const string prefix = "fault-kill";
        platform.Llm.Script(prefix, new LlmStep(Delay: TimeSpan.FromMilliseconds(300)));
        var client = platform.Client(await platform.CreateKeyAsync());
        var clock = Stopwatch.StartNew();

        // Submit everything, 16 at a time.
        var ids = new ConcurrentDictionary<int, string>();
        await Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (i, _) =>
        {
            using var response = await client.ExecuteAsync(new { task = $"{prefix} #{i:D4} done", agent_type = "general", async_execution = true });
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            ids[i] = (await response.JsonAsync())["task_id"]!.GetValue<string>();
        });
        var submitted = clock.Elapsed;

        List<HashSet<Guid>> inFlightAtKills = [];
        foreach (var progress in new[] { count / 4, count / 2 })
        {
            await HttpExtensions.WaitUntilAsync(() => Task.FromResult(platform.Llm.CallsFor(prefix).Count(c => c.Completed) >= progress),
                seconds: 120, what: $"{progress} answers");
            await platform.Worker.KillAsync();
            inFlightAtKills.Add(await RunningTasksAsync(prefix));
            await platform.Worker.StartAsync();
        }

        try
        {
            await HttpExtensions.WaitUntilAsync(async () =>
            {
                await using var scope = platform.Api.Services.CreateAsyncScope();
                return await scope.ServiceProvider.GetRequiredService<AgentDbContext>().Tasks
                    .CountAsync(t => t.Input.StartsWith(prefix) && t.Status != TaskStatus.Completed && t.Status != TaskStatus.Failed) == 0;
            }, seconds: 120, what: "every task final");
        }
        catch (TimeoutException)
        {
            await using var diagnosis = platform.Api.Services.CreateAsyncScope();
            var stuck = await diagnosis.ServiceProvider.GetRequiredService<AgentDbContext>().Tasks.AsNoTracking()
                .Where(t => t.Input.StartsWith(prefix) && t.Status != TaskStatus.Completed && t.Status != TaskStatus.Failed).ToListAsync();
            foreach (var t in stuck.Take(10))
                output.WriteLine($"stuck: {t.Input} {t.Status} attempts {t.Attempts} job {t.JobId} ({JobState(t.JobId)}) created {t.CreatedAt:O}");
            output.WriteLine($"{stuck.Count} stuck; now {DateTimeOffset.UtcNow:O}; worker output tail:\n" +
                string.Join('\n', platform.Worker.Output.Split('\n').TakeLast(60)));
            throw;
        }
        var drained = clock.Elapsed;

        await using var scope = platform.Api.Services.CreateAsyncScope();
        var tasks = await scope.ServiceProvider.GetRequiredService<AgentDbContext>().Tasks.AsNoTracking()
            .Where(t => t.Input.StartsWith(prefix)).ToListAsync();
        var calls = platform.Llm.CallsFor(prefix).Where(c => !c.Completed).GroupBy(c => c.UserMessage.Split(' ')[1])
            .ToDictionary(g => g.Key, g => g.Count());
        var extra = calls.Values.Sum() - count;
        output.WriteLine($"{count} tasks submitted in {submitted.TotalSeconds:0.0} s; Worker killed twice with " +
            $"{inFlightAtKills[0].Count} and {inFlightAtKills[1].Count} tasks in flight; all final after {drained.TotalSeconds:0.0} s; " +
            $"{calls.Values.Sum()} LLM calls ({extra} extra); attempts: " +
            string.Join(", ", tasks.GroupBy(t => t.Attempts).OrderBy(g => g.Key).Select(g => $"{g.Count()}×{g.Key}")));

        Assert.Equal(count, tasks.Count);
        Assert.All(tasks, t => Assert.Equal(TaskStatus.Completed, t.Status));
        foreach (var task in tasks)
        {
            var kills = inFlightAtKills.Count(set => set.Contains(task.Id));
            var made = calls.GetValueOrDefault(task.Input.Split(' ')[1]);
            Assert.True(made >= 1 && made <= 1 + kills, $"task {task.Input}: {made} LLM calls, in flight at {kills} kills");
        }
        Assert.True(extra <= inFlightAtKills.Sum(s => s.Count), $"{extra} extra calls for {inFlightAtKills.Sum(s => s.Count)} tasks in flight");
    }

    private sealed record Sample(string Kind, TimeSpan At, TimeSpan Took, int Status, bool RetryAfter, string Marker);

    private sealed record LoadRun(List<Sample> Samples, TimeSpan OutageFrom, TimeSpan OutageTo);

    /// <summary>Steady traffic (sync and async) for <paramref name="duration"/>; a store is stopped after 3 s for 5 s.</summary>
    private async Task<LoadRun> UnderLoadAsync(string prefix, TimeSpan duration, Func<Task> stop, Func<Task> start)
    {
        var enterprise = platform.Client(await platform.CreateKeyAsync());
        var limited = platform.Client(await platform.CreateKeyAsync("pro"));
        var samples = new ConcurrentBag<Sample>();
        var clock = Stopwatch.StartNew();
        var n = 0;

        async Task Loop(string kind, HttpClient client, bool async, TimeSpan pause)
        {
            while (clock.Elapsed < duration)
            {
                var marker = $"{prefix}-{kind}-{Interlocked.Increment(ref n):D5}";
                var at = clock.Elapsed;
                var took = Stopwatch.StartNew();
                int status;
                var retryAfter = false;
                try
                {
                    using var response = await client.ExecuteAsync(new { task = $"{marker} steady", agent_type = "general", async_execution = async });
                    status = (int)response.StatusCode;
                    retryAfter = response.Headers.RetryAfter is not null;
                }
                catch (HttpRequestException)
                {
                    status = -1;
                }
                samples.Add(new Sample(kind, at, took.Elapsed, status, retryAfter, marker));
                await Task.Delay(pause);
            }
        }

        var load = Task.WhenAll(
            Loop("sync", enterprise, false, TimeSpan.FromMilliseconds(50)),
            Loop("async", enterprise, true, TimeSpan.FromMilliseconds(50)),
            Loop("limited", limited, false, TimeSpan.FromMilliseconds(700)));
        await Task.Delay(TimeSpan.FromSeconds(3));
        var from = clock.Elapsed;
        await stop();
        await Task.Delay(TimeSpan.FromSeconds(5));
        await start();
        var to = clock.Elapsed;
        await load;
        return new LoadRun(samples.OrderBy(s => s.At).ToList(), from, to);
    }

    private void Report(string what, List<Sample> samples, TimeSpan from, TimeSpan to)
    {
        foreach (var group in samples.GroupBy(s => (s.Kind, During: s.At >= from && s.At < to)))
        {
            var took = group.Select(s => s.Took.TotalMilliseconds).Order().ToList();
            output.WriteLine($"{what} {(group.Key.During ? "during" : "outside")} the outage, {group.Key.Kind}: {group.Count()} requests, " +
                $"status {string.Join(" ", group.GroupBy(s => s.Status).OrderBy(g => g.Key).Select(g => $"{g.Key}×{g.Count()}"))}, " +
                $"p50 {took[took.Count / 2]:0} ms, max {took[^1]:0} ms");
        }
    }

    [Fact]
    public async Task Redis_stopped_for_five_seconds_under_load_gives_fast_answers_and_recovers_by_itself()
    {
        var (samples, outageFrom, outageTo) = await UnderLoadAsync("fault-redis", TimeSpan.FromSeconds(14),
            () => platform.Redis.StopAsync(), () => platform.Redis.StartAgainAsync());
        Report("Redis", samples, outageFrom, outageTo);

        Assert.DoesNotContain(samples, s => s.Status is 500 or -1);
        // Never a multi-second stall: the client fails fast while Redis is away.
        Assert.All(samples, s => Assert.True(s.Took < TimeSpan.FromSeconds(1.5), $"{s.Kind} took {s.Took}"));
        // A key that skips the limiter is served; a limited one gets 503 with Retry-After (or is served once Redis is back).
        Assert.All(samples.Where(s => s.Kind == "limited" && s.Status == 503), s => Assert.True(s.RetryAfter));
        Assert.Contains(samples, s => s.Kind == "limited" && s.Status == 503);
        Assert.Contains(samples, s => s.Kind == "sync" && s.At > outageFrom + TimeSpan.FromSeconds(1) && s.At < outageTo && s.Status == 200);
        // Recovered without a restart: the last seconds are all served.
        Assert.All(samples.Where(s => s.At > outageTo + TimeSpan.FromSeconds(2)), s => Assert.Equal(s.Kind == "async" ? 202 : 200, s.Status));
    }

    [Fact]
    public async Task Postgres_stopped_for_five_seconds_under_load_refuses_fast_runs_nothing_it_refused_and_finishes_what_it_accepted()
    {
        platform.Llm.Script("fault-postgres", new LlmStep(Delay: TimeSpan.FromMilliseconds(200)));
        var (samples, outageFrom, outageTo) = await UnderLoadAsync("fault-postgres", TimeSpan.FromSeconds(16),
            () => platform.Postgres.StopAsync(), () => platform.Postgres.StartAgainAsync());
        Report("Postgres", samples, outageFrom, outageTo);

        Assert.DoesNotContain(samples, s => s.Status is 500 or -1);
        Assert.All(samples.Where(s => s.Status == 503), s => Assert.True(s.RetryAfter, "a 503 says when to retry"));
        // New requests during the outage are refused fast; a sync run caught mid-flight waits to record its result.
        Assert.All(samples.Where(s => s.Status == 503), s => Assert.True(s.Took < TimeSpan.FromSeconds(1.5), $"a 503 took {s.Took}"));

        // Everything accepted completes, once; nothing refused runs (the sweep would enqueue an accepted task without a job).
        await Task.Delay(TimeSpan.FromSeconds(12));
        await using var scope = platform.Api.Services.CreateAsyncScope();
        var stored = await scope.ServiceProvider.GetRequiredService<AgentDbContext>().Tasks.AsNoTracking()
            .Where(t => t.Input.StartsWith("fault-postgres")).ToListAsync();
        var accepted = samples.Where(s => s.Kind == "async" && s.Status == 202).Select(s => s.Marker).ToHashSet();
        var refused = samples.Where(s => s.Status is not (200 or 202)).Select(s => s.Marker).ToHashSet();
        var acceptedTasks = stored.Where(t => accepted.Contains(t.Input.Split(' ')[0])).ToList();
        output.WriteLine($"{accepted.Count} async tasks accepted: {acceptedTasks.Count(t => t.Status == TaskStatus.Completed)} completed; " +
            $"{refused.Count} requests refused; LLM calls for refused ones: " +
            platform.Llm.CallsFor("fault-postgres").Count(c => refused.Contains(c.UserMessage.Split(' ')[0])));

        foreach (var s in samples.Where(s => refused.Contains(s.Marker)
                     && platform.Llm.CallsFor("fault-postgres").Any(c => c.UserMessage.StartsWith(s.Marker + " "))))
            output.WriteLine($"refused but called: {s}; task row: {stored.FirstOrDefault(t => t.Input.StartsWith(s.Marker + " "))?.Status} " +
                $"{stored.FirstOrDefault(t => t.Input.StartsWith(s.Marker + " "))?.Error}");
        foreach (var t in acceptedTasks.Where(t => t.Status != TaskStatus.Completed))
            output.WriteLine($"unfinished: {t.Input} {t.Status} attempts {t.Attempts} job {t.JobId} ({JobState(t.JobId)}) created {t.CreatedAt:O}; now {DateTimeOffset.UtcNow:O}");
        Assert.Equal(accepted.Count, acceptedTasks.Count);
        Assert.All(acceptedTasks, t => Assert.Equal(TaskStatus.Completed, t.Status));
        Assert.DoesNotContain(platform.Llm.CallsFor("fault-postgres"), c => refused.Contains(c.UserMessage.Split(' ')[0]));
        Assert.All(samples.Where(s => s.At > outageTo + TimeSpan.FromSeconds(3)), s => Assert.Equal(s.Kind == "async" ? 202 : 200, s.Status));
    }
}
