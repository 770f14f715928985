using System.ComponentModel.DataAnnotations;

namespace AgentPlatform.Engine.Routing;

/// <summary>Binds "Router": how the adaptive router weighs similarity, track record, cost and latency.</summary>
public sealed class RouterOptions
{
    public const string SectionName = "Router";

    /// <summary>Weight of a new EMA observation.</summary>
    [Range(0.01, 1.0)]
    public double EmaAlpha { get; set; } = 0.2;

    /// <summary>Success rate assumed for an agent with no history.</summary>
    [Range(0.0, 1.0)]
    public double PriorSuccessRate { get; set; } = 0.9;

    /// <summary>How much of the score the track record controls: score = similarity × (1 − w + w × success rate).</summary>
    [Range(0.0, 1.0)]
    public double SuccessWeight { get; set; } = 0.6;

    /// <summary>
    /// How much a key's own feedback counts in its routing: its success rate for an agent it rated is
    /// (1 − w) × the global record + w × its feedback EMA. Other keys never see it.
    /// </summary>
    [Range(0.0, 1.0)]
    public double FeedbackWeight { get; set; } = 0.5;

    /// <summary>Score penalty per cost tier above 1 (tiers 1..5).</summary>
    [Range(0.0, 1.0)]
    public double CostWeight { get; set; } = 0.01;

    /// <summary>Score penalty at <see cref="LatencyBudgetMs"/> average latency (linear, capped).</summary>
    [Range(0.0, 1.0)]
    public double LatencyWeight { get; set; } = 0.02;

    [Range(1, 600_000)]
    public double LatencyBudgetMs { get; set; } = 30_000;

    /// <summary>Below this similarity nothing matches and the default agent answers.</summary>
    [Range(0.0, 1.0)]
    public double MinSimilarity { get; set; } = 0.06;

    /// <summary>A lead of at least this much over the runner-up makes a single-agent run.</summary>
    [Range(0.0, 1.0)]
    public double SingleMargin { get; set; } = 0.03;

    /// <summary>When the lead is smaller: if the top two both score at least this, the task spans both fields (cascade); else parallel.</summary>
    [Range(0.0, 1.0)]
    public double CascadeThreshold { get; set; } = 0.3;

    /// <summary>A near-tie runs in parallel only when the leader matches at least this well; on weaker signals one agent answers.</summary>
    [Range(0.0, 1.0)]
    public double ParallelMinSimilarity { get; set; } = 0.15;

    /// <summary>Most agents in a parallel or cascade run.</summary>
    [Range(2, 5)]
    public int MaxAgents { get; set; } = 3;

    public TimeSpan StatsCacheDuration { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Prefix of the Redis keys of the track records (deployments sharing one Redis keep theirs apart).</summary>
    [Required, MaxLength(100)]
    public string StatsNamespace { get; set; } = "agents";

    /// <summary>Time limit of one provider embeddings call for routing; past it the local embedding decides.</summary>
    public TimeSpan EmbeddingTimeout { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>How long the provider's embeddings are not asked after they kept failing.</summary>
    public TimeSpan EmbeddingBreakDuration { get; set; } = TimeSpan.FromSeconds(30);
}
