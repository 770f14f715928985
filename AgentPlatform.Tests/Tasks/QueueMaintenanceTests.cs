using AgentPlatform.Engine.Data;
using AgentPlatform.Engine.Tasks;
using AgentPlatform.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using TaskStatus = AgentPlatform.Engine.Tasks.TaskStatus;

namespace AgentPlatform.Tests.Tasks;

[Collection(PlatformCollection.Name)]
public sealed class QueueMaintenanceTests(PlatformFixture platform)
{
    [Fact]
    public async Task An_accepted_task_whose_job_was_never_enqueued_is_picked_up_by_maintenance()
    {
        // As if the Api crashed between writing the task and enqueueing its job.
        var taskId = Guid.CreateVersion7();
        using (var scope = platform.Api.Services.CreateScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<AgentDbContext>();
            db.Tasks.Add(new AgentTask
            {
                Id = taskId, ApiKeyId = Guid.Empty, Agent = "general", Input = "orphaned task", IsAsync = true,
                Status = TaskStatus.Queued, CreatedAt = DateTimeOffset.UtcNow.AddMinutes(-2),
            });
            await db.SaveChangesAsync();
            await scope.ServiceProvider.GetRequiredService<QueueMaintenanceJob>().RunAsync(CancellationToken.None);
        }

        var admin = platform.Client(PlatformFixture.AdminKey);
        var final = await admin.WaitForFinalAsync(taskId.ToString());

        Assert.Equal("completed", final["status"]!.GetValue<string>());
        Assert.Contains("orphaned task", final["result"]!.GetValue<string>());
    }

    [Fact]
    public async Task Three_worker_processes_starting_together_on_a_fresh_database_migrate_it_once_and_all_run()
    {
        var connectionString = await platform.Postgres.CreateDatabaseAsync();
        var settings = platform.Settings();
        settings["ConnectionStrings__agentdb"] = connectionString;
        var workers = Enumerable.Range(0, 3).Select(_ => new WorkerProcess(settings)).ToList();
        try
        {
            // Three real processes, each applying the migrations and Hangfire's schema at start-up.
            await Task.WhenAll(workers.Select(w => w.StartAsync()));

            Assert.All(workers, w => Assert.True(w.IsRunning, w.Output));
            await using var connection = new Npgsql.NpgsqlConnection(connectionString);
            await connection.OpenAsync();
            await using var history = new Npgsql.NpgsqlCommand("""SELECT count(*), count(DISTINCT "MigrationId") FROM "__EFMigrationsHistory" """, connection);
            await using var reader = await history.ExecuteReaderAsync();
            await reader.ReadAsync();
            var applied = reader.GetInt64(0);
            Assert.Equal(applied, reader.GetInt64(1));
            Assert.Equal(typeof(AgentDbContext).Assembly.GetTypes().Count(t => t.IsSubclassOf(typeof(Microsoft.EntityFrameworkCore.Migrations.Migration))), applied);
        }
        finally
        {
            foreach (var worker in workers) await worker.DisposeAsync();
        }
    }
}
