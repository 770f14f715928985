using Hangfire;
using Hangfire.States;

namespace AgentPlatform.Engine.Tasks;

/// <summary>Hands async tasks to the Worker through Hangfire (queues high, default, low).</summary>
public sealed class TaskQueue(IBackgroundJobClient jobs, JobIdWriter jobIds)
{
    public static readonly string[] Queues = ["high", "default", "low"];

    // Hangfire's client is synchronous. A synchronous StackExchange.Redis call waits for a thread-pool thread to deliver its
    // reply (on Linux, socket completions run on the pool), so a burst of requests each blocked in it starves the pool that
    // would answer them: 5 s Redis timeouts at 200 tasks/s in bench/ before this gate. A few create jobs at a time; the
    // rest wait here without holding a thread.
    private static readonly SemaphoreSlim Creating = new(Math.Max(2, Environment.ProcessorCount));

    public static string QueueOf(TaskPriority priority) => priority switch
    {
        TaskPriority.High => "high",
        TaskPriority.Low => "low",
        _ => "default",
    };

    /// <summary>
    /// Enqueues the job; its id is recorded behind (<see cref="JobIdWriter"/>). The task row is written first, so a crash
    /// between the two leaves a queued task without a job, which <see cref="QueueMaintenanceJob"/> re-enqueues.
    /// </summary>
    public async Task<string> EnqueueAsync(AgentTask task, CancellationToken cancellationToken = default)
    {
        string jobId;
        await Creating.WaitAsync(cancellationToken);
        try
        {
            jobId = jobs.Create<AgentTaskJob>(
                job => job.RunAsync(task.Id, CancellationToken.None), new EnqueuedState(QueueOf(task.Priority)));
        }
        finally
        {
            Creating.Release();
        }
        jobIds.Record(task.Id, jobId);
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
