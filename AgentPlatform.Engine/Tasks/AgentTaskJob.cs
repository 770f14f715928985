using Hangfire;
using Microsoft.Extensions.DependencyInjection;

namespace AgentPlatform.Engine.Tasks;

/// <summary>
/// The Hangfire job that runs async tasks in the Worker: the tasks accepted together (<see cref="TaskQueue"/>), claimed in
/// one statement and run side by side. Provider failures end a task as failed inside <see cref="TaskRunner"/>; anything
/// else (a database outage) throws, and Hangfire retries the job, so accepted work is not lost; a task finished by an
/// earlier attempt is skipped by its claim, and a task's lease keeps a retry from running it twice.
/// </summary>
public sealed class AgentTaskJob(TaskRunner runner, TaskQueue queue, IServiceScopeFactory scopes)
{
    /// <summary>A job created before tasks shared jobs (one task each).</summary>
    [JobDisplayName("agent task {0}")]
    [AutomaticRetry(Attempts = 10, DelaysInSeconds = [1, 2, 5, 10, 15, 30, 30, 60, 60, 60], OnAttemptsExceeded = AttemptsExceededAction.Fail)]
    public Task RunAsync(Guid taskId, CancellationToken cancellationToken) => RunAsync([taskId], cancellationToken);

    [JobDisplayName("agent tasks")]
    // Retries come quickly: a retried job is safe (the task's lease stops a second run), and a task must not wait minutes
    // in Hangfire's default backoff (up to an hour) after a database blip.
    [AutomaticRetry(Attempts = 10, DelaysInSeconds = [1, 2, 5, 10, 15, 30, 30, 60, 60, 60], OnAttemptsExceeded = AttemptsExceededAction.Fail)]
    public async Task RunAsync(Guid[] taskIds, CancellationToken cancellationToken)
    {
        if (taskIds.Length == 1)
        {
            await RunOneAsync(runner, taskIds[0], null, cancellationToken);
            return;
        }
        var claimed = (await runner.ClaimAsync(taskIds)).ToDictionary(t => t.Id);
        var runs = taskIds.Distinct().Select(id => RunInScopeAsync(id, claimed.GetValueOrDefault(id), cancellationToken)).ToList();
        try
        {
            await Task.WhenAll(runs);
        }
        catch
        {
            // Every run has ended. A shutdown or deletion stops the job as cancelled (each interrupted task is back in the
            // queue); otherwise the first failure fails the job, and Hangfire retries it.
            cancellationToken.ThrowIfCancellationRequested();
            var failed = runs.FirstOrDefault(r => r.IsFaulted)?.Exception?.InnerException ?? new OperationCanceledException();
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failed);
        }
    }

    // Each task of a shared job runs on its own scope: a DbContext serves one operation at a time.
    private async Task RunInScopeAsync(Guid taskId, AgentTask? claimed, CancellationToken cancellationToken)
    {
        await Task.Yield();
        await using var scope = scopes.CreateAsyncScope();
        await RunOneAsync(scope.ServiceProvider.GetRequiredService<TaskRunner>(), taskId, claimed, cancellationToken);
    }

    /// <param name="claimed">The task, when the job's claim already took it; otherwise the run claims (or skips) it itself.</param>
    private async Task RunOneAsync(TaskRunner taskRunner, Guid taskId, AgentTask? claimed, CancellationToken cancellationToken)
    {
        var task = claimed is null
            ? await taskRunner.RunAsync(taskId, CancellationOutcome.Requeue, cancellationToken)
            : await taskRunner.RunClaimedFromQueueAsync(claimed, CancellationOutcome.Requeue, cancellationToken);
        if (task is { IsFinal: true, WebhookUrl: not null, Status: not TaskStatus.Cancelled }) queue.EnqueueWebhook(task);
    }
}
