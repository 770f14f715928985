using Hangfire;

namespace AgentPlatform.Engine.Tasks;

/// <summary>
/// The Hangfire job that runs one async task in the Worker. Provider failures end the task as
/// failed inside <see cref="TaskRunner"/>; anything else (a database outage) throws, and Hangfire
/// retries the job, so accepted work is not lost; the task's lease keeps a retry from running it twice.
/// </summary>
public sealed class AgentTaskJob(TaskRunner runner, TaskQueue queue)
{
    [JobDisplayName("agent task {0}")]
    // Retries come quickly: a retried job is safe (the task's lease stops a second run), and a task must not wait minutes
    // in Hangfire's default backoff (up to an hour) after a database blip.
    [AutomaticRetry(Attempts = 10, DelaysInSeconds = [1, 2, 5, 10, 15, 30, 30, 60, 60, 60], OnAttemptsExceeded = AttemptsExceededAction.Fail)]
    public async Task RunAsync(Guid taskId, CancellationToken cancellationToken)
    {
        var task = await runner.RunAsync(taskId, CancellationOutcome.Requeue, cancellationToken);
        if (task is { IsFinal: true, WebhookUrl: not null, Status: not TaskStatus.Cancelled }) queue.EnqueueWebhook(task);
    }
}
