using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Threading.Channels;
using AgentPlatform.Engine.Data;
using AgentPlatform.Engine.Infrastructure;
using AgentPlatform.Engine.Telemetry;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace AgentPlatform.Engine.Tasks;

/// <summary>
/// The rows of plain sync tasks (no session, no Idempotency-Key), written after their run instead of before and after
/// it: the sync request answers without waiting for Postgres. A finished task waits here until Postgres has it; the
/// writer commits whatever has gathered as soon as the previous write is done (group commit: one INSERT batch per round
/// trip under load, a write within a millisecond or two when idle), so a task is readable by
/// <c>GET /agent/status</c> on any instance one write later (milliseconds; the README gives the measured bound), and at once
/// on the instance that ran it (<see cref="Find"/>). An outage keeps the rows buffered and retried; past
/// <see cref="QueueOptions.WriteBehindMaxPending"/> new sync tasks take the stored path (and get the outage's 503) rather
/// than grow the buffer. A clean shutdown writes everything still buffered.
/// </summary>
public sealed class TaskWriteBehind(NpgsqlDataSource dataSource, EngineReadiness readiness,
    IOptions<QueueOptions> options, ILogger<TaskWriteBehind> logger) : BackgroundService
{
    private const int MaxBatch = 500;
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(10);

    private readonly ConcurrentDictionary<Guid, Pending> _pending = new();
    // ConcurrentDictionary.Count takes every lock of the dictionary; this is read on every sync request.
    private int _count;
    private readonly Channel<bool> _added = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private int _failures;

    private sealed record Pending(AgentTask Task)
    {
        public TaskCompletionSource Written { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>Whether plain sync tasks are written behind now (on by setting, and the buffer has room).</summary>
    public bool Accepting => options.Value.WriteBehind && Volatile.Read(ref _count) < options.Value.WriteBehindMaxPending;

    /// <summary>Finished tasks not yet in Postgres.</summary>
    public int Unwritten => Volatile.Read(ref _count);

    /// <summary>Takes a finished task's row; never blocks.</summary>
    public void Add(AgentTask task)
    {
        if (!_pending.TryAdd(task.Id, new Pending(task))) return;
        Interlocked.Increment(ref _count);
        TaskWriteBehindTelemetry.Unwritten(+1);
        _added.Writer.TryWrite(true);
    }

    /// <summary>A finished task of this key that this instance has not written yet (reads see it before Postgres does).</summary>
    public AgentTask? Find(Guid taskId, Guid keyId) =>
        _pending.TryGetValue(taskId, out var pending) && pending.Task.ApiKeyId == keyId ? pending.Task : null;

    /// <summary>Waits until the task's row is in Postgres, if this instance holds it unwritten (a write that refers to the row needs it).</summary>
    public Task WhenWrittenAsync(Guid taskId, CancellationToken cancellationToken) =>
        _pending.TryGetValue(taskId, out var pending) ? pending.Written.Task.WaitAsync(cancellationToken) : Task.CompletedTask;

    /// <summary>Waits until this instance's finished tasks of the key are in Postgres (a read of the key's tasks sees them all).</summary>
    public Task WhenKeyWrittenAsync(Guid keyId, CancellationToken cancellationToken) =>
        Task.WhenAll(_pending.Values.Where(p => p.Task.ApiKeyId == keyId).Select(p => p.Written.Task)).WaitAsync(cancellationToken);

    /// <summary>Writes everything buffered now (tests, and shutdown).</summary>
    public async Task FlushAsync(CancellationToken cancellationToken = default)
    {
        while (!_pending.IsEmpty && !cancellationToken.IsCancellationRequested)
        {
            if (await WriteAsync(cancellationToken)) continue;
            await Task.Delay(TimeSpan.FromMilliseconds(250), cancellationToken);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await readiness.WhenReady.WaitAsync(stoppingToken);
            while (!stoppingToken.IsCancellationRequested)
            {
                if (_pending.IsEmpty) await _added.Reader.ReadAsync(stoppingToken);
                _added.Reader.TryRead(out _);
                if (await WriteAsync(CancellationToken.None)) continue;
                // Postgres is away: retry, backing off (doubling from 100 ms up to 10 s) rather than spinning.
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(MaxBackoff.TotalMilliseconds, 100 << Math.Min(_failures, 7))), stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutdown: StopAsync writes what is left.
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (!readiness.IsReady) return;
        try
        {
            await FlushAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // The host's shutdown time ran out; what is left is logged below.
        }
        if (!_pending.IsEmpty)
            logger.LogError("Shutting down with {Count} finished sync tasks whose rows could not be written to Postgres; they are lost", _pending.Count);
    }

    /// <summary>One batch (what has gathered, up to <see cref="MaxBatch"/>); false when Postgres was away or refused it.</summary>
    private async Task<bool> WriteAsync(CancellationToken cancellationToken)
    {
        var batch = _pending.Values.Take(MaxBatch).ToList();
        if (batch.Count == 0) return true;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            await InsertAsync(batch.Select(p => p.Task).ToList(), cancellationToken);
        }
        catch (Exception e)
        {
            return Failed(e);
        }
        TaskWriteBehindTelemetry.WriteDuration.Record(clock.Elapsed.TotalSeconds);
        foreach (var pending in batch) Written(pending);
        if (_failures > 0)
        {
            logger.LogInformation("Sync task rows are written again; {Count} were buffered", _pending.Count);
            _failures = 0;
        }
        return true;
    }

    // One statement for any batch size: the batch as arrays, unnested (as the usage ledger writes). Idempotent by id, so a
    // batch whose acknowledgement was lost is simply written again. Raw SQL rather than EF Core's SaveChanges: the change
    // tracker's per-row work was a tenth of the Api's CPU at gateway rates (measured with dotnet-trace).
    private const string InsertSql = """
        INSERT INTO agent_tasks ("Id", "ApiKeyId", "Agent", "Input", "ContextJson", "Priority", "SessionId", "WebhookUrl", "IsAsync", "Status",
            "Result", "Error", "Model", "PromptTokens", "CompletionTokens", "CostUsd", "DurationMs", "RoutingJson", "Strategy", "ToolCallsJson",
            "CacheOutcome", "Attempts", "IdempotencyKey", "RequestHash", "TraceParent", "CreatedAt", "StartedAt", "CompletedAt")
        SELECT id, key, agent, input, context::jsonb, priority, session, webhook, async, status, result, error, model, prompt, completion, cost,
            duration, routing::jsonb, strategy, tools::jsonb, cache, attempts, idem, hash, trace, created, started, completed
        FROM unnest(@id, @key, @agent, @input, @context, @priority, @session, @webhook, @async, @status, @result, @error, @model, @prompt,
            @completion, @cost, @duration, @routing, @strategy, @tools, @cache, @attempts, @idem, @hash, @trace, @created, @started, @completed)
            AS t(id, key, agent, input, context, priority, session, webhook, async, status, result, error, model, prompt, completion, cost,
                 duration, routing, strategy, tools, cache, attempts, idem, hash, trace, created, started, completed)
        ON CONFLICT ("Id") DO NOTHING
        """;

    private async Task InsertAsync(List<AgentTask> tasks, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(InsertSql);
        var parameters = command.Parameters;
        parameters.Add(new NpgsqlParameter<Guid[]>("id", tasks.Select(t => t.Id).ToArray()));
        parameters.Add(new NpgsqlParameter<Guid[]>("key", tasks.Select(t => t.ApiKeyId).ToArray()));
        parameters.Add(PostgresArrays.Text("agent", tasks.Select(t => (string?)t.Agent)));
        parameters.Add(PostgresArrays.Text("input", tasks.Select(t => (string?)t.Input)));
        parameters.Add(PostgresArrays.Text("context", tasks.Select(t => t.ContextJson)));
        parameters.Add(PostgresArrays.Text("priority", tasks.Select(t => (string?)t.Priority.ToString())));
        parameters.Add(PostgresArrays.Text("session", tasks.Select(t => t.SessionId)));
        parameters.Add(PostgresArrays.Text("webhook", tasks.Select(t => t.WebhookUrl)));
        parameters.Add(new NpgsqlParameter<bool[]>("async", tasks.Select(t => t.IsAsync).ToArray()));
        TaskResults.AddOutcome(parameters, tasks);
        parameters.Add(new NpgsqlParameter<int[]>("attempts", tasks.Select(t => t.Attempts).ToArray()));
        parameters.Add(PostgresArrays.Text("idem", tasks.Select(t => t.IdempotencyKey)));
        parameters.Add(PostgresArrays.Text("hash", tasks.Select(t => t.RequestHash)));
        parameters.Add(PostgresArrays.Text("trace", tasks.Select(t => t.TraceParent)));
        parameters.Add(new NpgsqlParameter<DateTimeOffset[]>("created", tasks.Select(t => t.CreatedAt.ToUniversalTime()).ToArray()));
        parameters.Add(new NpgsqlParameter<DateTimeOffset?[]>("started", tasks.Select(t => t.StartedAt?.ToUniversalTime()).ToArray()));
        await command.ExecuteNonQueryAsync(cancellationToken);
    }


    private void Written(Pending pending)
    {
        if (!_pending.TryRemove(pending.Task.Id, out _)) return;
        Interlocked.Decrement(ref _count);
        TaskWriteBehindTelemetry.Unwritten(-1);
        pending.Written.TrySetResult();
    }

    private bool Failed(Exception e)
    {
        // The rows stay buffered; a task-row write never takes the service down.
        if (_failures++ == 0) logger.LogWarning(e, "Could not write {Count} finished sync tasks; they stay buffered and are retried", _pending.Count);
        PostgresPools.ClearAfter(e, dataSource);
        return false;
    }
}

/// <summary>The write-behind buffer's metrics.</summary>
internal static class TaskWriteBehindTelemetry
{
    private static long _unwritten;

    public static void Unwritten(int delta) => Interlocked.Add(ref _unwritten, delta);

    public static readonly ObservableGauge<long> UnwrittenGauge = PlatformTelemetry.Meter.CreateObservableGauge(
        "agent_task_rows_unwritten", () => Interlocked.Read(ref _unwritten),
        description: "Finished sync tasks whose rows are not yet in Postgres");

    public static readonly Histogram<double> WriteDuration = PlatformTelemetry.Meter.CreateHistogram<double>(
        "agent_task_rows_write_duration", unit: "s", description: "Time to write one batch of finished sync tasks' rows");
}
