using System.Threading.Channels;
using AgentPlatform.Engine.Infrastructure;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace AgentPlatform.Engine.Tasks;

/// <summary>
/// Records each enqueued task's Hangfire job id behind the request that enqueued it, many in one UPDATE. The id is only
/// needed to delete a job (a cancel) and to check on a job that waited minutes (the maintenance sweep), so an async POST
/// does not wait for a second Postgres write. A task whose id was never written (its process died first) is given a new
/// job by the sweep after <see cref="QueueMaintenanceJob.OrphanAge"/>; the claim keeps either job from running it twice.
/// A task cancelled before its id was written keeps its job, which then finds the task final and does nothing.
/// </summary>
public sealed class JobIdWriter(NpgsqlDataSource dataSource, ILogger<JobIdWriter> logger) : BackgroundService
{
    private const int MaxBatch = 1000;
    private readonly Channel<(Guid TaskId, string JobId)> _pending =
        Channel.CreateUnbounded<(Guid, string)>(new UnboundedChannelOptions { SingleReader = true });

    public void Record(Guid taskId, string jobId) => _pending.Writer.TryWrite((taskId, jobId));

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        List<(Guid TaskId, string JobId)> batch = [];
        try
        {
            while (await _pending.Reader.WaitToReadAsync(stoppingToken))
            {
                while (batch.Count < MaxBatch && _pending.Reader.TryRead(out var entry)) batch.Add(entry);
                try
                {
                    await WriteAsync(batch, stoppingToken);
                    batch.Clear();
                }
                catch (NpgsqlException e)
                {
                    // Kept and written with the next batch; the sweep covers tasks whose id never gets written.
                    logger.LogWarning("Could not record {Count} job ids ({Message}); retrying", batch.Count, e.Message);
                    PostgresPools.ClearAfter(e, dataSource);
                    await Task.Delay(TimeSpan.FromSeconds(1), stoppingToken);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        // A clean shutdown writes what is left.
        while (_pending.Reader.TryRead(out var entry)) batch.Add(entry);
        if (batch.Count == 0) return;
        try
        {
            await WriteAsync(batch, CancellationToken.None);
        }
        catch (NpgsqlException e)
        {
            logger.LogWarning("{Count} job ids not recorded at shutdown ({Message}); the maintenance sweep will enqueue those tasks again",
                batch.Count, e.Message);
        }
    }

    private async Task WriteAsync(List<(Guid TaskId, string JobId)> batch, CancellationToken cancellationToken)
    {
        // Rows locked in id order first, as the claim and the final updates lock theirs (TaskResults says why).
        await using var command = dataSource.CreateCommand(
            """
            WITH locked AS MATERIALIZED (SELECT "Id" FROM agent_tasks WHERE "Id" = ANY($1) ORDER BY "Id" FOR UPDATE)
            UPDATE agent_tasks AS t SET "JobId" = v.job FROM unnest($1, $2) AS v(id, job)
            WHERE t."Id" = v.id AND t."Id" IN (SELECT "Id" FROM locked)
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = batch.Select(e => e.TaskId).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = batch.Select(e => e.JobId).ToArray() });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
