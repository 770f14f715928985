using System.ComponentModel.DataAnnotations;

namespace AgentPlatform.Engine.Routing;

/// <summary>How the router embeds prompts and agents (Router:Embedding).</summary>
public enum RouterEmbedding
{
    /// <summary>The hashed bag of words and 4-grams (<see cref="LocalEmbeddingGenerator"/>): microseconds, no memory, lexical only.</summary>
    Hashed,
    /// <summary>all-MiniLM-L6-v2 in process (<see cref="MiniLmEmbeddingGenerator"/>): milliseconds, about the model's size in memory, semantic.</summary>
    MiniLM,
    /// <summary>The provider's embedding model (Llm:EmbeddingModel) behind a breaker; <see cref="RouterOptions.FallbackEmbedding"/> without one.</summary>
    Provider,
}

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

    /// <summary>How often the outcomes of this process's runs are written to the shared track records (folded in between).</summary>
    public TimeSpan StatsFlushInterval { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Prefix of the Redis keys of the track records (deployments sharing one Redis keep theirs apart).</summary>
    [Required, MaxLength(100)]
    public string StatsNamespace { get; set; } = "agents";

    /// <summary>
    /// The embedding space prompts and agents are compared in. MiniLM is the default: on the held-out part of
    /// bench/router-eval-set.json it is the most accurate of the local modes at a few milliseconds per prompt (bench/README.md).
    /// </summary>
    public RouterEmbedding Embedding { get; set; } = RouterEmbedding.MiniLM;

    /// <summary>The local mode that answers in <see cref="RouterEmbedding.Provider"/> mode while there is no provider, or it fails.</summary>
    public RouterEmbedding FallbackEmbedding { get; set; } = RouterEmbedding.MiniLM;

    /// <summary>
    /// How much the agent's closest examples count against its description and keywords: similarity =
    /// w × max(mean cos to the <see cref="ClosestExamples"/> closest examples, cos to the profile) + (1 − w) × cos to the profile
    /// (an agent without examples: the profile alone).
    /// </summary>
    [Range(0.0, 1.0)]
    public double ExampleWeight { get; set; } = 0.7;

    /// <summary>
    /// In the MiniLM and provider spaces, how much the hashed (word) similarity counts: similarity = (1 − w) × semantic + w × hashed.
    /// On the tuning part of the evaluation set 0.4 did best (92.5 %; MiniLM alone 86.3 %; 0.2, 0.3, 0.5, 0.6: 88.7-91.2 %). On the
    /// held-out part it neither helped nor hurt (86.9 % both): it costs a fraction of a millisecond, so it stays.
    /// </summary>
    [Range(0.0, 1.0)]
    public double LexicalWeight { get; set; } = 0.4;

    /// <summary>How many of an agent's closest examples are averaged: two are steadier than one lucky match.</summary>
    [Range(1, 10)]
    public int ClosestExamples { get; set; } = 2;

    /// <summary>
    /// Added to the default agent's similarity: the everyday catch-all answers unless a specialist matches clearly better
    /// (tuned on the tuning part of bench/router-eval-set.json; 0 treats it like any agent).
    /// </summary>
    [Range(0.0, 0.5)]
    public double DefaultAgentBias { get; set; } = 0.02;

    /// <summary>
    /// With a provider configured (never the offline model), a lead of the best agent over the runner-up smaller than this
    /// asks the model to choose between the two (one cheap call, cached by prompt). 0 turns the tie-breaker off.
    /// </summary>
    [Range(0.0, 1.0)]
    public double TieBreakMargin { get; set; } = 0.03;

    /// <summary>The model of the tie-breaker's call at the default provider; empty means Llm:DefaultModel.</summary>
    [MaxLength(200)]
    public string? TieBreakModel { get; set; }

    /// <summary>Time limit of the tie-breaker's call; past it the scores decide.</summary>
    public TimeSpan TieBreakTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How long a tie-breaker's answer is reused for the same prompt and the same two agents (in Redis).</summary>
    public TimeSpan TieBreakCacheDuration { get; set; } = TimeSpan.FromDays(1);

    /// <summary>Time limit of one provider embeddings call for routing; past it the local embedding decides.</summary>
    public TimeSpan EmbeddingTimeout { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>How long the provider's embeddings are not asked after they kept failing.</summary>
    public TimeSpan EmbeddingBreakDuration { get; set; } = TimeSpan.FromSeconds(30);
}
