using AgentPlatform.Engine.Caching;
using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Threading.Channels;
using AgentPlatform.Engine.Telemetry;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace AgentPlatform.Engine.Billing;

/// <summary>
/// The usage ledger of this process: every billable call is recorded here as one <see cref="UsageEntry"/>, without
/// blocking the call, and <see cref="UsageLedgerWriter"/> writes the entries to Postgres in batches, at most
/// <see cref="UsageOptions.FlushInterval"/> later. Entries stay here until Postgres has them: an outage delays them
/// (up to <see cref="UsageOptions.MaxBufferedEntries"/>), a clean shutdown writes them. Reads of today's spend count the
/// entries not written yet as well, so this process's calls are visible the moment they are priced.
/// </summary>
public sealed class UsageLedger(NpgsqlDataSource dataSource, IOptions<UsageOptions> options, TimeProvider time, ILogger<UsageLedger> logger) : Admission.ISpendHistory
{
    // Unwritten entries by id: a dictionary rather than a queue so reads can count them, and a batch whose write
    // failed simply stays. Written entries are removed only after Postgres acknowledged them.
    private readonly ConcurrentDictionary<Guid, UsageEntry> _unwritten = new();
    private readonly Channel<bool> _batchFull = Channel.CreateBounded<bool>(
        new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private int _count;
    private long _refused;
    private long _lastRefusalLog;
    private volatile bool _closed;

    /// <summary>Entries recorded and not yet written.</summary>
    public int Unwritten => Volatile.Read(ref _count);

    /// <summary>Entries refused because the buffer was full (Postgres away for long); each was logged.</summary>
    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>
    /// Records a call for the <see cref="UsageScope.Current"/> key, task and session. Never blocks and never throws.
    /// </summary>
    public void Record(string kind, string? agent, string model, long inputTokens, long outputTokens, decimal costUsd, string? cacheOutcome = null)
    {
        var scope = UsageScope.Current;
        Record(new UsageEntry
        {
            Id = Guid.CreateVersion7(),
            ApiKeyId = scope?.ApiKeyId,
            Agent = agent,
            Model = model,
            Kind = kind,
            InputTokens = inputTokens,
            OutputTokens = outputTokens,
            CostUsd = costUsd,
            CacheOutcome = cacheOutcome,
            TaskId = scope?.TaskId,
            SessionId = scope?.SessionId,
            CreatedAt = time.GetUtcNow(),
        });
    }

    /// <summary>
    /// An answer served from a cache instead of a model call (<see cref="CacheOutcomes.Exact"/> or
    /// <see cref="CacheOutcomes.Semantic"/>): an entry with cost 0, for the <see cref="UsageScope.Current"/> key and task.
    /// Pass the tokens the task itself records for the answer, so the ledger's token totals keep matching the tasks'.
    /// </summary>
    public void RecordCacheHit(string outcome, string agent, string model, long inputTokens = 0, long outputTokens = 0)
    {
        if (outcome is not (CacheOutcomes.Exact or CacheOutcomes.Semantic))
            throw new ArgumentOutOfRangeException(nameof(outcome), outcome, $"A cache outcome is '{CacheOutcomes.Exact}' or '{CacheOutcomes.Semantic}'.");
        Record(UsageKinds.Chat, agent, model, inputTokens, outputTokens, 0m, outcome);
    }

    /// <summary>Records a complete entry (its id makes a repeated write harmless). Never blocks and never throws.</summary>
    public void Record(UsageEntry entry)
    {
        // The columns' limits: a name too long for its column would make Postgres refuse the whole batch.
        entry.Agent = Clip(entry.Agent, 100);
        entry.Model = Clip(entry.Model, 200) ?? "";
        entry.SessionId = Clip(entry.SessionId, 200);
        if (Interlocked.Increment(ref _count) > options.Value.MaxBufferedEntries)
        {
            Interlocked.Decrement(ref _count);
            Refuse(entry);
            return;
        }
        if (!_unwritten.TryAdd(entry.Id, entry))
        {
            Interlocked.Decrement(ref _count);
            return;
        }
        UsageLedgerTelemetry.Unwritten(+1);
        if (_closed)
            logger.LogWarning("A usage entry was recorded after the ledger's last write at shutdown ({Kind}, {Model}, ${CostUsd}); it is lost",
                entry.Kind, entry.Model, entry.CostUsd);
        if (Volatile.Read(ref _count) >= options.Value.MaxBatchSize) _batchFull.Writer.TryWrite(true);
    }

    private static string? Clip(string? text, int length) => text is { Length: var n } && n > length ? text[..length] : text;

    private void Refuse(UsageEntry entry)
    {
        var refused = Interlocked.Increment(ref _refused);
        UsageLedgerTelemetry.Refused.Add(1);
        // Logged, never silent; at most one line a second however many are refused.
        var now = Environment.TickCount64;
        var last = Interlocked.Read(ref _lastRefusalLog);
        if (now - last >= 1000 && Interlocked.CompareExchange(ref _lastRefusalLog, now, last) == last)
        {
            logger.LogError("Usage ledger buffer full ({Max} entries unwritten: Postgres unreachable?); refused an entry for key {ApiKeyId} " +
                "({Kind}, {Model}, {InputTokens}+{OutputTokens} tokens, ${CostUsd}); {Refused} refused so far",
                options.Value.MaxBufferedEntries, entry.ApiKeyId, entry.Kind, entry.Model, entry.InputTokens, entry.OutputTokens, entry.CostUsd, refused);
        }
    }

    /// <summary>Completes when a full batch is waiting or <paramref name="delay"/> has passed.</summary>
    internal async Task WaitForBatchAsync(TimeSpan delay, CancellationToken cancellationToken)
    {
        if (Unwritten >= options.Value.MaxBatchSize) return;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(delay);
        try
        {
            await _batchFull.Reader.ReadAsync(timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // The interval passed.
        }
    }

    /// <summary>Up to <paramref name="max"/> unwritten entries, oldest first as far as the buffer knows them.</summary>
    internal List<UsageEntry> Peek(int max)
    {
        var batch = new List<UsageEntry>(Math.Min(max, Math.Max(Unwritten, 0)));
        foreach (var (_, entry) in _unwritten)
        {
            if (batch.Count >= max) break;
            batch.Add(entry);
        }
        return batch;
    }

    /// <summary>Postgres has these: they leave the buffer.</summary>
    internal void Written(IEnumerable<UsageEntry> entries)
    {
        foreach (var entry in entries)
        {
            if (!_unwritten.TryRemove(entry.Id, out _)) continue;
            Interlocked.Decrement(ref _count);
            UsageLedgerTelemetry.Unwritten(-1);
        }
    }

    /// <summary>After the last write at shutdown: later entries cannot be written any more (and say so).</summary>
    internal void Close() => _closed = true;

    /// <summary>This process's unwritten entries that match (a snapshot).</summary>
    public List<UsageEntry> UnwrittenWhere(Func<UsageEntry, bool> predicate)
    {
        var matching = new List<UsageEntry>();
        foreach (var (_, entry) in _unwritten)
            if (predicate(entry)) matching.Add(entry);
        return matching;
    }

    /// <summary>What the key spent today (UTC), from the ledger, this process's unwritten entries included.</summary>
    public Task<decimal> SpentTodayAsync(Guid keyId, CancellationToken cancellationToken = default) =>
        SpentTodayAsync("\"ApiKeyId\" = @value", keyId, e => e.ApiKeyId == keyId, cancellationToken);

    /// <summary>What every key spent today (UTC) on the agent's calls, from the ledger, this process's unwritten entries included.</summary>
    public Task<decimal> SpentTodayByAgentAsync(string agent, CancellationToken cancellationToken = default) =>
        SpentTodayAsync("\"Agent\" = @value", agent, e => e.Agent == agent, cancellationToken);

    private async Task<decimal> SpentTodayAsync<T>(string condition, T value, Func<UsageEntry, bool> matches, CancellationToken cancellationToken)
    {
        var since = StartOfDay(time.GetUtcNow());
        // The unwritten entries first, then the table without them: an entry written in between is counted once either way.
        var unwritten = UnwrittenWhere(e => e.CreatedAt >= since && matches(e));
        await using var command = dataSource.CreateCommand(
            $"""SELECT COALESCE(SUM("CostUsd"), 0) FROM usage_ledger WHERE {condition} AND "CreatedAt" >= @since AND NOT ("Id" = ANY(@unwritten))""");
        command.Parameters.AddWithValue("value", value!);
        command.Parameters.AddWithValue("since", since);
        command.Parameters.AddWithValue("unwritten", unwritten.Select(e => e.Id).ToArray());
        var written = (decimal)(await command.ExecuteScalarAsync(cancellationToken))!;
        return written + unwritten.Sum(e => e.CostUsd);
    }

    public static DateTimeOffset StartOfDay(DateTimeOffset at) => new(at.UtcDateTime.Date, TimeSpan.Zero);
}

/// <summary>The ledger's metrics, shared by every ledger in the process.</summary>
internal static class UsageLedgerTelemetry
{
    private static long _unwritten;

    public static void Unwritten(int delta) => Interlocked.Add(ref _unwritten, delta);

    public static readonly ObservableGauge<long> UnwrittenGauge = PlatformTelemetry.Meter.CreateObservableGauge(
        "agent_usage_ledger_unwritten", () => Interlocked.Read(ref _unwritten),
        description: "Usage ledger entries recorded and not yet written to Postgres");

    public static readonly Counter<long> Refused = PlatformTelemetry.Meter.CreateCounter<long>(
        "agent_usage_ledger_dropped", description: "Usage ledger entries refused because the buffer was full (each logged)");

    public static readonly Histogram<double> WriteDuration = PlatformTelemetry.Meter.CreateHistogram<double>(
        "agent_usage_ledger_write_duration", unit: "s", description: "Time to write one batch of usage entries");
}
