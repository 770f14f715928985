using AgentPlatform.Engine.Memory;

namespace AgentPlatform.Engine.Caching;

/// <summary>The response cache's part in a task, as the task row, the status view and the ledger keep it.</summary>
public static class CacheOutcomes
{
    /// <summary>Served from the exact cache.</summary>
    public const string Exact = "exact";
    /// <summary>Served from the semantic cache: a prompt of the same meaning was answered before.</summary>
    public const string Semantic = "semantic";
    /// <summary>Looked up, not found: the LLM answered, and a completed answer is stored.</summary>
    public const string Miss = "miss";
    /// <summary>The client asked for a fresh answer (<c>Cache-Control: no-cache</c> or <c>"cache": false</c>): neither read nor written.</summary>
    public const string Bypass = "bypass";
    /// <summary>Not cacheable: caching is off for the agent, the temperature is above the bound, or a tool with side effects is offered.</summary>
    public const string Skipped = "skipped";

    public static bool IsHit(string? outcome) => outcome is Exact or Semantic;

    /// <summary>The <c>X-Cache</c> response header: HIT, SEMANTIC or MISS (anything not served from the cache).</summary>
    public static string Header(string? outcome) => outcome switch
    {
        Exact => "HIT",
        Semantic => "SEMANTIC",
        _ => "MISS",
    };
}

/// <summary>A cached answer, as stored when it was produced.</summary>
/// <param name="CostUsd">What producing it cost; each hit saves that much.</param>
public sealed record CachedAnswer(string Agent, string? Model, string Strategy, string Text, decimal CostUsd, long PromptTokens,
    long CompletionTokens, DateTimeOffset CreatedAt);

/// <summary>
/// What a lookup found before a run. <see cref="Hit"/> set: the task completes with it, without any LLM call, and costs
/// nothing against budgets and token limits (reserve nothing). Otherwise <see cref="ResponseCache.StoreAsync"/> keeps the
/// run's answer when <see cref="Outcome"/> is <see cref="CacheOutcomes.Miss"/>.
/// </summary>
public sealed record CacheLookup(string Outcome, CachedAnswer? Hit = null, double? Score = null)
{
    public static readonly CacheLookup Bypassed = new(CacheOutcomes.Bypass);
    public static readonly CacheLookup NotCacheable = new(CacheOutcomes.Skipped);

    public bool IsHit => Hit is not null;

    /// <summary>Where a miss's answer goes.</summary>
    internal CacheSlot? Slot { get; init; }
}

/// <summary>
/// A run's lookup before the exact entry is read (<see cref="ResponseCache.Probe"/>): <see cref="Decided"/> when it is not
/// looked up at all (bypassed, not cacheable); else <see cref="ExactKey"/> to read (by the run's admission, in the same round
/// trip as its limits) and whether the semantic tier follows a miss.
/// </summary>
public sealed record CacheProbe(CacheLookup? Decided)
{
    public StackExchange.Redis.RedisKey? ExactKey { get; init; }
    public bool Semantic { get; init; }
    internal double Threshold { get; init; }
    internal CacheSlot? Slot { get; init; }
}

/// <summary>Where a miss's answer is stored: the exact entry (Redis) and, when the semantic tier applies, its point.</summary>
internal sealed record CacheSlot(string Scope, PromptFingerprint Fingerprint, string Agents, TimeSpan Ttl, SemanticPoint? Semantic);

/// <summary>The prompt's vector in the collection of its embedding space, computed by the lookup and reused by the store.</summary>
internal sealed record SemanticPoint(VectorCollection Collection, float[] Vector);
