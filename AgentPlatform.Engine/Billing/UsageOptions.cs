namespace AgentPlatform.Engine.Billing;

/// <summary>Binds "Usage": how the usage ledger is written and read.</summary>
public sealed class UsageOptions
{
    public const string SectionName = "Usage";

    /// <summary>How often buffered entries are written; the ledger is at most this far behind (plus one write).</summary>
    public TimeSpan FlushInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Entries per INSERT; a full batch is written at once, without waiting for the interval.</summary>
    public int MaxBatchSize { get; set; } = 1_000;

    /// <summary>
    /// Entries held in memory while Postgres cannot take them. Past it new entries are refused — logged as errors and counted
    /// in agent_usage_ledger_dropped_total — rather than letting an outage exhaust the process's memory (~300 bytes each).
    /// </summary>
    public int MaxBufferedEntries { get; set; } = 200_000;

    /// <summary>The longest range GET /usage and GET /admin/usage answer for.</summary>
    public int MaxRangeDays { get; set; } = 366;
}
