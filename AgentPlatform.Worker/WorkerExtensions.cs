using AgentPlatform.Engine.Tasks;
using Hangfire;

namespace AgentPlatform.Worker;

public static class WorkerExtensions
{
    public static IHostApplicationBuilder AddWorkerServices(this IHostApplicationBuilder builder)
    {
        var queue = builder.Configuration.GetSection(QueueOptions.SectionName).Get<QueueOptions>() ?? new QueueOptions();
        // Expired leases and jobless tasks are swept every few seconds, not by a once-a-minute recurring job.
        builder.Services.AddHostedService<QueueMaintenanceService>();
        // Hangfire runs every IBackgroundProcess in DI beside its own.
        builder.Services.AddSingleton<Hangfire.Server.IBackgroundProcess, ServerRegistration>();
        builder.Services.AddHangfireServer(server =>
        {
            server.ServerName = $"worker:{Environment.MachineName}:{Environment.ProcessId}";
            server.Queues = TaskQueue.Queues; // Hangfire serves the queues in this order: high first.
            server.WorkerCount = queue.WorkerCount;
            server.ShutdownTimeout = queue.ShutdownTimeout;
            server.HeartbeatInterval = queue.HeartbeatInterval;
            server.ServerCheckInterval = queue.HeartbeatInterval;
            server.ServerTimeout = queue.HeartbeatInterval * 4;
            server.SchedulePollingInterval = TimeSpan.FromSeconds(5);
            // How soon a cancelled task's job notices it was deleted.
            server.CancellationCheckInterval = TimeSpan.FromSeconds(1);
        });
        return builder;
    }

    /// <summary>Removes the once-a-minute maintenance job earlier versions registered; <see cref="QueueMaintenanceService"/> replaced it.</summary>
    public static void ScheduleMaintenance(this IHost host) =>
        host.Services.GetRequiredService<IRecurringJobManager>().RemoveIfExists("requeue-orphaned-tasks");
}
