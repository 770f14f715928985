using AgentPlatform.Engine.Data;
using AgentPlatform.Engine.Tasks;
using AgentPlatform.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
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
    public async Task Several_processes_migrating_one_fresh_database_together_all_succeed()
    {
        var connectionString = await platform.Postgres.CreateDatabaseAsync();
        var hosts = Enumerable.Range(0, 3).Select(_ =>
        {
            var builder = Host.CreateApplicationBuilder();
            var settings = platform.Settings();
            settings["ConnectionStrings__agentdb"] = connectionString;
            builder.Configuration.AddInMemoryCollection(settings.Select(s => KeyValuePair.Create(s.Key.Replace("__", ":"), (string?)s.Value)));
            builder.AddAgentPlatformEngine();
            return builder.Build();
        }).ToList();

        await Task.WhenAll(hosts.Select(h => h.Services.MigrateDatabaseAsync()));

        using var scope = hosts[0].Services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<AgentDbContext>();
        Assert.Empty(await Microsoft.EntityFrameworkCore.RelationalDatabaseFacadeExtensions.GetPendingMigrationsAsync(db.Database));
        foreach (var host in hosts) host.Dispose();
    }
}
