using Hangfire;

namespace AgentPlatform.Engine.Tasks;

/// <summary>
/// The Hangfire job that runs one async task in the Worker. Provider failures end the task as
/// failed inside <see cref="TaskRunner"/>; anything else (a database outage) throws, and Hangfire
/// retries the job with its backoff, so accepted work is not lost.
/// </summary>
public sealed class AgentTaskJob(TaskRunner runner, TaskQueue queue)
{
    [JobDisplayName("agent task {0}")]
    [AutomaticRetry(Attempts = 10, OnAttemptsExceeded = AttemptsExceededAction.Fail)]
    public async Task RunAsync(Guid taskId, CancellationToken cancellationToken)
    {
        var task = await runner.RunAsync(taskId, CancellationOutcome.Requeue, cancellationToken);
        if (task is { IsFinal: true, WebhookUrl: not null, Status: not TaskStatus.Cancelled }) queue.EnqueueWebhook(task);
    }
}
