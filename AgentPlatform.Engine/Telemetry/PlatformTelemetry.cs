using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace AgentPlatform.Engine.Telemetry;

/// <summary>
/// The platform's own spans and metrics. Metric names keep the seeds' Prometheus names; the
/// Prometheus exporter appends the unit ("_seconds") and "_total" to counters.
/// </summary>
public static class PlatformTelemetry
{
    public const string Name = "AgentPlatform";

    public static readonly ActivitySource ActivitySource = new(Name);
    public static readonly Meter Meter = new(Name);

    public static readonly Counter<long> Requests =
        Meter.CreateCounter<long>("agent_requests", description: "Agent tasks by agent and final status");

    public static readonly Histogram<double> RequestDuration =
        Meter.CreateHistogram<double>("agent_request_duration", unit: "s", description: "Agent task duration",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300] });

    public static readonly Counter<long> LlmTokens =
        Meter.CreateCounter<long>("agent_llm_tokens", description: "LLM tokens by model and token type");

    public static readonly Counter<double> CostUsd =
        Meter.CreateCounter<double>("agent_cost_usd", description: "LLM cost in US dollars");

    public static readonly Counter<long> CacheHits =
        Meter.CreateCounter<long>("agent_cache_hits", description: "Runs answered from the response cache, by tier (exact or semantic) and agent");

    public static readonly Counter<long> CacheMisses =
        Meter.CreateCounter<long>("agent_cache_misses", description: "Cacheable runs the response cache could not answer, by agent");

    public static readonly Counter<double> CostSavedUsd =
        Meter.CreateCounter<double>("agent_cost_saved_usd", description: "What the answers served from the cache cost when they were produced, in US dollars");

    /// <summary>Sessions with a message within the hot-history TTL, as last counted (<see cref="Conversations.ActiveConversations"/>).</summary>
    public static long ActiveConversations;

    public static readonly ObservableGauge<long> ActiveConversationsGauge =
        Meter.CreateObservableGauge("agent_active_conversations", () => Interlocked.Read(ref ActiveConversations),
            description: "Conversations with a message within the hot-history TTL (all Api replicas report the same count)");

    public static void RecordCacheHit(string tier, string agent, decimal costSavedUsd)
    {
        CacheHits.Add(1, new KeyValuePair<string, object?>("tier", tier), new KeyValuePair<string, object?>("agent", agent));
        CostSavedUsd.Add((double)costSavedUsd, new KeyValuePair<string, object?>("agent", agent));
    }

    public static void RecordTask(string agent, string status, TimeSpan duration)
    {
        var tags = new TagList { { "agent", agent }, { "status", status } };
        Requests.Add(1, tags);
        RequestDuration.Record(duration.TotalSeconds, new TagList { { "agent", agent } });
    }
}
