using AgentPlatform.Engine.Data;
using AgentPlatform.Engine.Infrastructure;
using AgentPlatform.Engine.Telemetry;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace AgentPlatform.Engine.Tasks;

/// <summary>
/// The Worker's sweep, every <see cref="QueueOptions.MaintenanceInterval"/>: hands on every running task whose lease
/// expired (its Worker or Api died) — an async task goes back to the queue, or fails once it used its attempts; a sync
/// task fails, since nobody is left to answer — and re-enqueues accepted async tasks whose Hangfire job was never
/// created. Each step is one conditional UPDATE … RETURNING, so several Workers sweeping at once hand a task on once.
/// </summary>
public sealed class QueueMaintenanceJob(AgentDbContext db, NpgsqlDataSource dataSource, TaskQueue queue, TaskEvents events,
    Hangfire.JobStorage jobs, IOptions<QueueOptions> options, ILogger<QueueMaintenanceJob> logger)
{
    // The Api enqueues right after storing; a task still without a job after this was stored by an Api that could not.
    public static readonly TimeSpan OrphanAge = TimeSpan.FromSeconds(10);
    public const string AbandonedSync = "The Api instance running this sync task stopped before it finished.";

    public static string GaveUp(int attempts) =>
        $"Gave up after {attempts} attempts: each run stopped before it finished (its Worker stopped or crashed).";

    public async Task RunAsync(CancellationToken cancellationToken) => await RunAsync(new LapsedLeases(), cancellationToken);

    /// <param name="lapsed">What earlier sweeps saw lapse; a task is handed on only once it stayed lapsed for half a lease.</param>
    public async Task RunAsync(LapsedLeases lapsed, CancellationToken cancellationToken)
    {
        var maxAttempts = options.Value.MaxAttempts;
        // After a database outage every lease looks lapsed, live runs' included: they could not renew. A live run renews
        // within a third of a lease once the database is back, so a task is handed on only when it has stayed lapsed
        // for half a lease, across sweeps; a dead run's task waits that much longer, a live run keeps its task. (Rows are
        // locked in id order, as every statement updating several tasks does: TaskResults says why.)
        List<Guid> expired = [];
        await using (var find = dataSource.CreateCommand(
            """SELECT "Id" FROM agent_tasks WHERE "Status" = 'running' AND ("LeaseExpiresAt" IS NULL OR "LeaseExpiresAt" < now())"""))
        await using (var reader = await find.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken)) expired.Add(reader.GetGuid(0));
        }
        var due = lapsed.Observe(expired, DateTimeOffset.UtcNow, options.Value.LeaseDuration / 2);

        if (due.Count > 0)
        {
            await using (var sweep = dataSource.CreateCommand(
                """
                WITH locked AS MATERIALIZED (SELECT "Id" FROM agent_tasks WHERE "Id" = ANY($4) ORDER BY "Id" FOR UPDATE)
                UPDATE agent_tasks SET
                    "Status" = CASE WHEN NOT "IsAsync" OR "Attempts" >= $1 THEN 'failed' ELSE 'queued' END,
                    "Error" = CASE WHEN NOT "IsAsync" THEN $2 WHEN "Attempts" >= $1 THEN $3 ELSE "Error" END,
                    "CompletedAt" = CASE WHEN NOT "IsAsync" OR "Attempts" >= $1 THEN now() END,
                    "LeaseOwner" = NULL, "LeaseExpiresAt" = NULL
                WHERE "Id" IN (SELECT "Id" FROM locked) AND "Status" = 'running' AND ("LeaseExpiresAt" IS NULL OR "LeaseExpiresAt" < now())
                RETURNING "Id"
                """))
            {
                sweep.Parameters.Add(new NpgsqlParameter { Value = maxAttempts });
                sweep.Parameters.Add(new NpgsqlParameter { Value = AbandonedSync });
                sweep.Parameters.Add(new NpgsqlParameter { Value = GaveUp(maxAttempts) });
                sweep.Parameters.Add(new NpgsqlParameter { Value = due.ToArray() });
                List<Guid> handedOn = [];
                await using (var reader = await sweep.ExecuteReaderAsync(cancellationToken))
                {
                    while (await reader.ReadAsync(cancellationToken)) handedOn.Add(reader.GetGuid(0));
                }
                // Side by side, so the re-enqueued ones share jobs (TaskQueue).
                var handed = await db.Tasks.AsNoTracking().Where(t => handedOn.Contains(t.Id)).ToListAsync(cancellationToken);
                await Task.WhenAll(handed.Select(async task =>
                {
                    if (task.Status == TaskStatus.Queued)
                    {
                        await queue.EnqueueAsync(task, cancellationToken);
                        logger.LogWarning("Task {TaskId}'s run stopped renewing its lease; enqueued it again (attempt {Attempt} of {Max})",
                            task.Id, task.Attempts + 1, maxAttempts);
                    }
                    else
                    {
                        logger.LogWarning("Task {TaskId}'s run stopped renewing its lease; failed: {Error}", task.Id, task.Error);
                        PlatformTelemetry.RecordTask(task.Agent, TaskStatus.Failed, TimeSpan.Zero);
                        if (task is { IsAsync: true, WebhookUrl: not null }) queue.EnqueueWebhook(task);
                    }
                    await events.PublishAsync(task.Id);
                }));
            }
        }

        var cutoff = DateTimeOffset.UtcNow - OrphanAge;
        var orphans = await db.Tasks.AsNoTracking()
            .Where(t => t.IsAsync && t.Status == TaskStatus.Queued && t.JobId == null && t.CreatedAt < cutoff)
            .OrderBy(t => t.CreatedAt).Take(500).ToListAsync(cancellationToken);
        // Together, so they share jobs (TaskQueue).
        await Task.WhenAll(orphans.Select(async task =>
        {
            await queue.EnqueueAsync(task, cancellationToken);
            logger.LogWarning("Task {TaskId} had no job; enqueued it again", task.Id);
        }));

        // Queued a long time: is its job still alive in Hangfire? A job that is gone (Redis lost it in a restart), finished,
        // failed, or "processing" on a server that no longer exists will never start the task; it gets a new job (the claim
        // keeps a late old job from running it twice). Waiting in the queue or for a retry is alive.
        var strandedBefore = DateTimeOffset.UtcNow - options.Value.StrandedAfter;
        var waiting = await db.Tasks.AsNoTracking()
            .Where(t => t.IsAsync && t.Status == TaskStatus.Queued && t.JobId != null && t.CreatedAt < strandedBefore)
            .OrderBy(t => t.CreatedAt).Take(100).ToListAsync(cancellationToken);
        if (waiting.Count == 0) return;
        using var connection = jobs.GetConnection();
        var servers = jobs.GetMonitoringApi().Servers().Select(s => s.Name).ToHashSet();
        List<AgentTask> stranded = [];
        foreach (var task in waiting)
        {
            var state = connection.GetStateData(task.JobId!);
            var alive = state?.Name switch
            {
                "Enqueued" => !await FetchedByTheDeadAsync(task.JobId!, cancellationToken),
                "Scheduled" or "Awaiting" => true,
                "Processing" => state.Data.TryGetValue("ServerId", out var server) && servers.Contains(server),
                _ => false,
            };
            if (alive) continue;
            logger.LogWarning("Task {TaskId} waited {Age} with job {JobId} in state {State}; enqueuing it again",
                task.Id, DateTimeOffset.UtcNow - task.CreatedAt, task.JobId, state?.Name ?? "(none)");
            stranded.Add(task);
        }
        await Task.WhenAll(stranded.Select(task => queue.EnqueueAsync(task, cancellationToken)));
    }

    /// <summary>
    /// An enqueued job that a Worker fetched and then died with: Hangfire hands it out again after its invisibility
    /// timeout; one fetched more than twice that long ago was not (read from Hangfire.PostgreSql's queue table). On Redis,
    /// Hangfire.Redis's own watcher re-queues a job whose server is gone, so an enqueued job there is alive.
    /// </summary>
    private async Task<bool> FetchedByTheDeadAsync(string jobId, CancellationToken cancellationToken)
    {
        if (options.Value.Storage != QueueStorage.Postgres) return false;
        if (!long.TryParse(jobId, out var id)) return true;
        await using var command = dataSource.CreateCommand(
            $"""SELECT fetchedat FROM "{DatabaseMigrator.HangfireSchema}".jobqueue WHERE jobid = $1 ORDER BY fetchedat NULLS FIRST LIMIT 1""");
        command.Parameters.Add(new NpgsqlParameter { Value = id });
        var fetchedAt = await command.ExecuteScalarAsync(cancellationToken);
        return fetchedAt switch
        {
            null => true, // no queue entry: nothing will fetch it
            DBNull => false, // waiting to be fetched
            DateTime at => DateTime.UtcNow - DateTime.SpecifyKind(at, DateTimeKind.Utc) > options.Value.InvisibilityTimeout * 2,
            _ => false,
        };
    }
}


/// <summary>Tasks whose lease a sweep found lapsed, and since when; kept across the sweeps of one Worker.</summary>
public sealed class LapsedLeases
{
    private Dictionary<Guid, DateTimeOffset> _since = [];

    /// <summary>Records this sweep's lapsed tasks and returns those lapsed for at least <paramref name="grace"/>.</summary>
    public IReadOnlyList<Guid> Observe(IReadOnlyList<Guid> lapsed, DateTimeOffset now, TimeSpan grace)
    {
        _since = lapsed.ToDictionary(id => id, id => _since.GetValueOrDefault(id, now));
        return _since.Where(e => now - e.Value >= grace).Select(e => e.Key).ToList();
    }
}

/// <summary>Runs <see cref="QueueMaintenanceJob"/> in the Worker, every few seconds (Hangfire's recurring jobs go by the minute).</summary>
public sealed class QueueMaintenanceService(IServiceScopeFactory scopes, NpgsqlDataSource dataSource, IOptions<QueueOptions> options,
    ILogger<QueueMaintenanceService> logger)
    : BackgroundService
{
    private readonly LapsedLeases _lapsed = new();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.MaintenanceInterval);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await using var scope = scopes.CreateAsyncScope();
                await scope.ServiceProvider.GetRequiredService<QueueMaintenanceJob>().RunAsync(_lapsed, stoppingToken);
            }
            catch (Exception e) when (!stoppingToken.IsCancellationRequested)
            {
                // Whatever went wrong (a store outage, a failed job creation), the next round tries again: a sweep that
                // stopped for good would leave dead runs' tasks running forever.
                logger.LogWarning(e, "Queue maintenance skipped a round: {Message}", e.Message);
                PostgresPools.ClearAfter(e, dataSource);
            }
        }
    }
}
