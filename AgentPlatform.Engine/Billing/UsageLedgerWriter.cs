using System.Diagnostics;
using AgentPlatform.Engine.Data;
using AgentPlatform.Engine.Infrastructure;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace AgentPlatform.Engine.Billing;

/// <summary>
/// Writes the <see cref="UsageLedger"/>'s entries to Postgres off the request path: every
/// <see cref="UsageOptions.FlushInterval"/>, or at once when a batch is full. One INSERT per batch (the batch as arrays,
/// unnested: one statement and a dozen parameters for any batch size), idempotent by entry id, so a batch whose
/// acknowledgement was lost can be written again. While Postgres is away the entries stay buffered and the write is
/// retried (backing off to 10 s), logged once when it starts failing and once when it recovers. On a clean shutdown
/// the writer stops after the services that record (Kestrel, the Hangfire server) and writes everything still buffered.
/// </summary>
public sealed class UsageLedgerWriter(UsageLedger ledger, NpgsqlDataSource dataSource, EngineReadiness readiness,
    IOptions<UsageOptions> options, ILogger<UsageLedgerWriter> logger) : BackgroundService
{
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(10);
    private int _failures;
    private DateTimeOffset _failingSince;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // The table exists once the schema is prepared (in the background in the Api); entries wait in the buffer until then.
        try
        {
            await readiness.WhenReady.WaitAsync(stoppingToken);
        }
        catch (OperationCanceledException)
        {
            return;
        }
        while (!stoppingToken.IsCancellationRequested)
        {
            var interval = options.Value.FlushInterval;
            try
            {
                // After a failed write, a full buffer must not turn the retries into a busy loop: back off, doubling up to 10 s.
                if (_failures == 0) await ledger.WaitForBatchAsync(interval, stoppingToken);
                else await Task.Delay(TimeSpan.FromTicks(Math.Min(MaxBackoff.Ticks, interval.Ticks << Math.Min(_failures, 10))), stoppingToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            // A write in progress finishes even when shutdown starts: StopAsync writes what is left after it.
            await FlushAsync(CancellationToken.None);
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        // Everything still buffered, retried until written or the host's shutdown time runs out.
        while (readiness.IsReady && ledger.Unwritten > 0 && !cancellationToken.IsCancellationRequested)
        {
            if (await FlushAsync(cancellationToken)) break;
            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(250), cancellationToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
        ledger.Close();
        if (ledger.Unwritten > 0)
            logger.LogError("Shutting down with {Count} usage entries that could not be written to Postgres; they are lost", ledger.Unwritten);
    }

    /// <summary>Writes what is buffered now, batch by batch; false when a write failed (the rest stays buffered).</summary>
    private async Task<bool> FlushAsync(CancellationToken cancellationToken)
    {
        var max = options.Value.MaxBatchSize;
        // Only what is there now: entries keep arriving, and the next round takes those.
        for (var rounds = (ledger.Unwritten + max - 1) / max; rounds > 0; rounds--)
        {
            var batch = ledger.Peek(max);
            if (batch.Count == 0) break;
            var clock = Stopwatch.StartNew();
            try
            {
                await InsertAsync(batch, cancellationToken);
            }
            catch (PostgresException e) when (e.SqlState.StartsWith("22") || e.SqlState.StartsWith("23"))
            {
                // Postgres refuses the data itself: retrying the batch would refuse it forever and hold up every later entry.
                // One by one, the entries it takes are written and the one it refuses is logged with what it carried.
                if (!await InsertOneByOneAsync(batch, cancellationToken)) return false;
                continue;
            }
            catch (Exception e)
            {
                // Whatever went wrong, the entries stay buffered: a ledger write never takes the service down.
                if (_failures++ == 0)
                {
                    _failingSince = DateTimeOffset.UtcNow;
                    logger.LogWarning(e, "Could not write {Count} usage entries; they stay buffered and are retried", ledger.Unwritten);
                }
                PostgresPools.ClearAfter(e, dataSource);
                return false;
            }
            UsageLedgerTelemetry.WriteDuration.Record(clock.Elapsed.TotalSeconds);
            ledger.Written(batch);
            if (_failures > 0)
            {
                logger.LogInformation("Usage ledger writes work again after {Seconds:0} s; writing the entries buffered meanwhile",
                    (DateTimeOffset.UtcNow - _failingSince).TotalSeconds);
                _failures = 0;
            }
        }
        return true;
    }

    private async Task<bool> InsertOneByOneAsync(List<UsageEntry> batch, CancellationToken cancellationToken)
    {
        foreach (var entry in batch)
        {
            try
            {
                await InsertAsync([entry], cancellationToken);
            }
            catch (PostgresException e) when (e.SqlState.StartsWith("22") || e.SqlState.StartsWith("23"))
            {
                logger.LogError(e, "Postgres refused usage entry {Id} (key {ApiKeyId}, task {TaskId}, {Kind}, {Model}, {InputTokens}+{OutputTokens} tokens, " +
                    "${CostUsd}, at {CreatedAt:O}); it is left out of the ledger", entry.Id, entry.ApiKeyId, entry.TaskId, entry.Kind, entry.Model,
                    entry.InputTokens, entry.OutputTokens, entry.CostUsd, entry.CreatedAt);
            }
            catch (Exception e)
            {
                logger.LogWarning(e, "Could not write usage entries one by one; they stay buffered and are retried");
                _failures++;
                return false;
            }
            ledger.Written([entry]);
        }
        return true;
    }

    internal const string InsertSql = """
        INSERT INTO usage_ledger ("Id", "ApiKeyId", "Agent", "Model", "Kind", "InputTokens", "OutputTokens", "CostUsd",
                                  "CacheOutcome", "TaskId", "SessionId", "CreatedAt")
        SELECT * FROM unnest(@id, @key, @agent, @model, @kind, @input, @output, @cost, @cache, @task, @session, @at)
        ON CONFLICT ("Id") DO NOTHING
        """;

    private async Task InsertAsync(IReadOnlyList<UsageEntry> batch, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(InsertSql);
        command.CommandTimeout = 30;
        command.Parameters.Add(new NpgsqlParameter<Guid[]>("id", batch.Select(e => e.Id).ToArray()));
        command.Parameters.Add(new NpgsqlParameter<Guid?[]>("key", batch.Select(e => e.ApiKeyId).ToArray()));
        command.Parameters.Add(PostgresArrays.Text("agent", batch.Select(e => e.Agent)));
        command.Parameters.Add(PostgresArrays.Text("model", batch.Select(e => (string?)e.Model)));
        command.Parameters.Add(PostgresArrays.Text("kind", batch.Select(e => (string?)e.Kind)));
        command.Parameters.Add(new NpgsqlParameter<long[]>("input", batch.Select(e => e.InputTokens).ToArray()));
        command.Parameters.Add(new NpgsqlParameter<long[]>("output", batch.Select(e => e.OutputTokens).ToArray()));
        command.Parameters.Add(new NpgsqlParameter<decimal[]>("cost", batch.Select(e => e.CostUsd).ToArray()));
        command.Parameters.Add(PostgresArrays.Text("cache", batch.Select(e => e.CacheOutcome)));
        command.Parameters.Add(new NpgsqlParameter<Guid?[]>("task", batch.Select(e => e.TaskId).ToArray()));
        command.Parameters.Add(PostgresArrays.Text("session", batch.Select(e => e.SessionId)));
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset[]>("at", batch.Select(e => e.CreatedAt.ToUniversalTime()).ToArray()));
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

}
