using AgentPlatform.Engine.Data;
using Hangfire;
using Hangfire.States;
using Microsoft.EntityFrameworkCore;

namespace AgentPlatform.Engine.Tasks;

/// <summary>Hands async tasks to the Worker through Hangfire (queues high, default, low).</summary>
public sealed class TaskQueue(IBackgroundJobClient jobs, AgentDbContext db)
{
    public static readonly string[] Queues = ["high", "default", "low"];

    public static string QueueOf(TaskPriority priority) => priority switch
    {
        TaskPriority.High => "high",
        TaskPriority.Low => "low",
        _ => "default",
    };

    /// <summary>
    /// Enqueues the job and records its id. The task row is written first, so a crash between the
    /// two leaves a queued task without a job, which <see cref="QueueMaintenanceJob"/> re-enqueues.
    /// </summary>
    public async Task<string> EnqueueAsync(AgentTask task, CancellationToken cancellationToken = default)
    {
        var jobId = jobs.Create<AgentTaskJob>(
            job => job.RunAsync(task.Id, CancellationToken.None), new EnqueuedState(QueueOf(task.Priority)));
        await db.Tasks.Where(t => t.Id == task.Id)
            .ExecuteUpdateAsync(s => s.SetProperty(t => t.JobId, jobId), cancellationToken);
        task.JobId = jobId;
        return jobId;
    }

    /// <summary>Schedules the POST of a finished task to its webhook (retried by Hangfire until it succeeds).</summary>
    public void EnqueueWebhook(AgentTask task) =>
        jobs.Create<WebhookDeliveryJob>(job => job.DeliverAsync(task.Id, CancellationToken.None), new EnqueuedState(QueueOf(task.Priority)));

    /// <summary>Stops a queued or running job; the task's own status is already final.</summary>
    public void Abort(AgentTask task)
    {
        if (task.JobId is not null) jobs.Delete(task.JobId);
    }
}
