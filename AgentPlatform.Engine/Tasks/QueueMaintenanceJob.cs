using AgentPlatform.Engine.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace AgentPlatform.Engine.Tasks;

/// <summary>Recurring Worker job: re-enqueues accepted tasks whose Hangfire job was never created.</summary>
public sealed class QueueMaintenanceJob(AgentDbContext db, TaskQueue queue, ILogger<QueueMaintenanceJob> logger)
{
    public static readonly TimeSpan OrphanAge = TimeSpan.FromSeconds(30);

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
    }
}
