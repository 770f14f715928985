using System.Net;
using AgentPlatform.Engine.Data;
using AgentPlatform.Engine.Tasks;
using AgentPlatform.Tests.Infrastructure;
using Hangfire;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using TaskStatus = AgentPlatform.Engine.Tasks.TaskStatus;

namespace AgentPlatform.Tests.Tasks;

/// <summary>Async tasks accepted together share a Hangfire job (TaskQueue), and each still runs once, or not at all once cancelled.</summary>
[Collection(PlatformCollection.Name)]
public sealed class SharedJobTests(PlatformFixture platform)
{
    private async Task<List<AgentTask>> TasksAsync(string prefix, int count)
    {
        List<AgentTask> rows = [];
        // Job ids are recorded behind the answer (JobIdWriter).
        await HttpExtensions.WaitUntilAsync(async () =>
        {
            await using var scope = platform.Api.Services.CreateAsyncScope();
            rows = await scope.ServiceProvider.GetRequiredService<AgentDbContext>().Tasks.AsNoTracking()
                .Where(t => t.Input.StartsWith(prefix)).ToListAsync();
            return rows.Count == count && rows.All(t => t.JobId is not null);
        }, what: "the tasks and their job ids");
        return rows;
    }

    private Hangfire.Storage.IStorageConnection Jobs() => platform.Api.Services.GetRequiredService<JobStorage>().GetConnection();

    [Fact]
    public async Task Async_tasks_accepted_together_share_jobs_and_each_runs_once()
    {
        const string prefix = "shared-jobs";
        platform.Llm.Script(prefix, new LlmStep(Delay: TimeSpan.Zero));
        var client = platform.Client(await platform.CreateKeyAsync());

        var ids = await Task.WhenAll(Enumerable.Range(0, 30).Select(async i =>
        {
            using var response = await client.ExecuteAsync(new { task = $"{prefix} #{i}", agent_type = "general", async_execution = true });
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            return (await response.JsonAsync())["task_id"]!.GetValue<string>();
        }));
        foreach (var id in ids) Assert.Equal("completed", (await client.WaitForFinalAsync(id))["status"]!.GetValue<string>());

        var rows = await TasksAsync(prefix, 30);
        Assert.All(rows, t => Assert.Equal(1, t.Attempts));
        Assert.Equal(30, platform.Llm.CallsFor(prefix).Count(c => !c.Completed));
        Assert.Equal(30, platform.Llm.CallsFor(prefix).Select(c => c.UserMessage).Distinct().Count());
        var jobs = rows.GroupBy(t => t.JobId!).ToList();
        Assert.True(jobs.Count < 30, "30 tasks accepted at once got 30 jobs");
        // Each job carries exactly the tasks that name it.
        using var connection = Jobs();
        foreach (var job in jobs)
        {
            var carried = Assert.IsType<Guid[]>(connection.GetJobData(job.Key)!.Job.Args[0]);
            Assert.Equal(job.Select(t => t.Id).Order(), carried.Order());
        }
    }

    [Fact]
    public async Task Cancelling_a_queued_task_leaves_its_job_to_the_other_tasks_and_deletes_a_job_of_its_own()
    {
        const string prefix = "shared-cancel";
        platform.Llm.Script(prefix, new LlmStep(Delay: TimeSpan.Zero));
        var client = platform.Client(await platform.CreateKeyAsync());
        AgentTask alone;
        List<AgentTask> burst = [];
        await platform.Worker.KillAsync();
        try
        {
            using (var seed = await client.ExecuteAsync(new { task = $"{prefix} alone", agent_type = "general", async_execution = true }))
                Assert.Equal(HttpStatusCode.Accepted, seed.StatusCode);
            alone = (await TasksAsync(prefix, 1)).Single();
            await Task.Delay(100); // past Queue:JobInterval, so the next task gets a job at once and the two after it share one

            // Stored as the Api stores them, then enqueued in one burst through the Api's own queue.
            var queue = platform.Api.Services.GetRequiredService<TaskQueue>();
            await using (var scope = platform.Api.Services.CreateAsyncScope())
            {
                var db = scope.ServiceProvider.GetRequiredService<AgentDbContext>();
                for (var i = 0; i < 3; i++)
                {
                    burst.Add(new AgentTask
                    {
                        Id = Guid.CreateVersion7(), ApiKeyId = alone.ApiKeyId, Agent = "general", Input = $"{prefix} burst {i}", IsAsync = true,
                        Status = TaskStatus.Queued, CreatedAt = DateTimeOffset.UtcNow,
                    });
                }
                db.Tasks.AddRange(burst);
                await db.SaveChangesAsync();
            }
            var enqueued = await Task.WhenAll(burst.Select(t => queue.EnqueueAsync(t)).ToList());
            Assert.NotEqual(enqueued[0], enqueued[1]);
            Assert.Equal(enqueued[1], enqueued[2]);
            await TasksAsync(prefix, 4);

            using (var cancel = await client.PostAsync($"/agent/tasks/{burst[1].Id}/cancel", null))
                Assert.Equal(HttpStatusCode.OK, cancel.StatusCode);
            using (var cancel = await client.PostAsync($"/agent/tasks/{alone.Id}/cancel", null))
                Assert.Equal(HttpStatusCode.OK, cancel.StatusCode);
            using var connection = Jobs();
            Assert.Equal("Deleted", connection.GetStateData(alone.JobId!).Name);
            Assert.Equal("Enqueued", connection.GetStateData(enqueued[1]).Name);
        }
        finally
        {
            await platform.Worker.StartAsync();
        }

        Assert.Equal("completed", (await client.WaitForFinalAsync(burst[0].Id.ToString()))["status"]!.GetValue<string>());
        Assert.Equal("completed", (await client.WaitForFinalAsync(burst[2].Id.ToString()))["status"]!.GetValue<string>());
        Assert.Equal("cancelled", (await client.StatusAsync(burst[1].Id.ToString()))["status"]!.GetValue<string>());
        Assert.Equal("cancelled", (await client.StatusAsync(alone.Id.ToString()))["status"]!.GetValue<string>());
        Assert.Equal([$"{prefix} burst 0", $"{prefix} burst 2"],
            platform.Llm.CallsFor(prefix).Where(c => !c.Completed).Select(c => c.UserMessage).Order());
    }
}
