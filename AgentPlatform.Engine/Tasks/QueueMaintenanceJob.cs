using AgentPlatform.Engine.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace AgentPlatform.Engine.Tasks;

/// <summary>
/// Recurring Worker job: re-enqueues accepted async tasks whose Hangfire job was never created, and
/// ends sync tasks whose Api instance died mid-request (nobody is left to answer them).
/// </summary>
public sealed class QueueMaintenanceJob(AgentDbContext db, TaskQueue queue, ILogger<QueueMaintenanceJob> logger)
{
    public static readonly TimeSpan OrphanAge = TimeSpan.FromSeconds(30);
    public static readonly TimeSpan AbandonedSyncAge = TimeSpan.FromMinutes(30);

    public async Task RequeueOrphansAsync(CancellationToken cancellationToken)
    {
        var cutoff = DateTimeOffset.UtcNow - OrphanAge;
        var orphans = await db.Tasks.AsNoTracking()
            .Where(t => t.IsAsync && t.Status == TaskStatus.Queued && t.JobId == null && t.CreatedAt < cutoff)
            .OrderBy(t => t.CreatedAt).Take(500).ToListAsync(cancellationToken);
        foreach (var task in orphans)
        {
            await queue.EnqueueAsync(task, cancellationToken);
            logger.LogWarning("Task {TaskId} had no job; enqueued it again", task.Id);
        }

        var abandonedBefore = DateTimeOffset.UtcNow - AbandonedSyncAge;
        var abandoned = await db.Tasks
            .Where(t => !t.IsAsync && t.Status == TaskStatus.Running && t.StartedAt < abandonedBefore)
            .ExecuteUpdateAsync(s => s
                .SetProperty(t => t.Status, TaskStatus.Failed)
                .SetProperty(t => t.Error, "The Api instance running this sync task stopped before it finished.")
                .SetProperty(t => t.CompletedAt, DateTimeOffset.UtcNow), cancellationToken);
        if (abandoned > 0) logger.LogWarning("Marked {Count} abandoned sync tasks as failed", abandoned);
    }
}
