using AgentPlatform.Engine.Infrastructure;
using Hangfire;
using Hangfire.States;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace AgentPlatform.Engine.Tasks;

/// <summary>
/// Hands async tasks to the Worker through Hangfire (queues high, default, low). Tasks accepted together share a job: a job
/// costs Hangfire about twenty storage round trips (fetch, two state changes under a lock, expiry, acknowledgement), which
/// one Worker paid per task — the most of its work per task with a fast LLM. Per queue, this process creates at most one
/// job per <see cref="QueueOptions.JobInterval"/>, each with every task accepted since the last one (up to
/// <see cref="QueueOptions.MaxTasksPerJob"/>); a task accepted after a quiet interval gets its job at once.
/// </summary>
public sealed class TaskQueue
{
    public static readonly string[] Queues = ["high", "default", "low"];

    private readonly IBackgroundJobClient _jobs;
    private readonly JobStorage _storage;
    private readonly JobIdWriter _jobIds;
    private readonly ILogger<TaskQueue> _logger;
    private readonly int _maxTasksPerJob;
    private readonly Dictionary<string, GroupCommit<Pending>> _queues;

    private sealed record Pending(AgentTask Task)
    {
        public TaskCompletionSource<string> Created { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    public TaskQueue(IBackgroundJobClient jobs, JobStorage storage, JobIdWriter jobIds, IOptions<QueueOptions> options, ILogger<TaskQueue> logger)
    {
        (_jobs, _storage, _jobIds, _logger, _maxTasksPerJob) = (jobs, storage, jobIds, logger, Math.Max(1, options.Value.MaxTasksPerJob));
        _queues = Queues.ToDictionary(queue => queue,
            queue => new GroupCommit<Pending>(batch => Create(queue, batch), TakeJob, options.Value.JobInterval));
    }

    public static string QueueOf(TaskPriority priority) => priority switch
    {
        TaskPriority.High => "high",
        TaskPriority.Low => "low",
        _ => "default",
    };

    /// <summary>
    /// Enqueues the task, in a job it may share with others accepted with it; the job's id is recorded behind
    /// (<see cref="JobIdWriter"/>). The task row is written first, so a crash between the two leaves a queued task without
    /// a job, which <see cref="QueueMaintenanceJob"/> re-enqueues.
    /// </summary>
    public async Task<string> EnqueueAsync(AgentTask task, CancellationToken cancellationToken = default)
    {
        var pending = new Pending(task);
        _queues[QueueOf(task.Priority)].Add(pending);
        return await pending.Created.Task.WaitAsync(cancellationToken);
    }

    private (List<Pending> Batch, List<Pending> Later) TakeJob(List<Pending> queued) =>
        queued.Count <= _maxTasksPerJob ? (queued, []) : (queued[.._maxTasksPerJob], queued[_maxTasksPerJob..]);

    // Hangfire's client is synchronous. Only one job per queue is being created at a time (the group commit's one round), so
    // at most three pool threads wait in it: a burst of requests each blocked in a synchronous Redis call starved the pool
    // that delivers the replies (5 s Redis timeouts at 200 tasks/s in bench/, when every request created its own job).
    private Task Create(string queue, List<Pending> batch)
    {
        try
        {
            var ids = batch.ConvertAll(p => p.Task.Id).ToArray();
            var jobId = _jobs.Create<AgentTaskJob>(job => job.RunAsync(ids, CancellationToken.None), new EnqueuedState(queue));
            foreach (var pending in batch)
            {
                _jobIds.Record(pending.Task.Id, jobId);
                pending.Task.JobId = jobId;
                pending.Created.TrySetResult(jobId);
            }
        }
        catch (Exception e)
        {
            foreach (var pending in batch) pending.Created.TrySetException(e);
        }
        return Task.CompletedTask;
    }

    /// <summary>Schedules the POST of a finished task to its webhook (retried by Hangfire until it succeeds).</summary>
    public void EnqueueWebhook(AgentTask task) =>
        _jobs.Create<WebhookDeliveryJob>(job => job.DeliverAsync(task.Id, CancellationToken.None), new EnqueuedState(QueueOf(task.Priority)));

    /// <summary>
    /// Stops a queued or running job whose only task this is; the task's own status is already final. A job shared with
    /// other tasks is left to them: the cancelled task's run stops on its lost lease, and a queued one is skipped by its claim.
    /// Best effort: with the job storage away, the job is left too (it finds its task final), and the cancel stands.
    /// </summary>
    public void Abort(AgentTask task)
    {
        if (task.JobId is null) return;
        try
        {
            using (var connection = _storage.GetConnection())
            {
                if (connection.GetJobData(task.JobId)?.Job?.Args is [Guid[] { Length: > 1 }, ..]) return;
            }
            _jobs.Delete(task.JobId);
        }
        catch (Exception e)
        {
            _logger.LogWarning("Job {JobId} of cancelled task {TaskId} left in place ({Message}); it will find the task cancelled",
                task.JobId, task.Id, e.GetBaseException().Message);
        }
    }
}
