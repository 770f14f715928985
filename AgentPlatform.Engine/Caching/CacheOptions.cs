using System.Text.RegularExpressions;
using AgentPlatform.Engine.Agents;
using AgentPlatform.Engine.Tools;
using Microsoft.Extensions.Options;

namespace AgentPlatform.Engine.Caching;

/// <summary>Binds "Cache": the response caches (exact in Redis, semantic in the vector store) and when a run may use them.</summary>
public sealed class CacheOptions
{
    public const string SectionName = "Cache";

    /// <summary>Whether agents cache answers when their own <c>cache.enabled</c> does not say.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>How long an answer is served, when the agent's <c>cache.ttl_seconds</c> does not say.</summary>
    public TimeSpan DefaultTtl { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// Runs asked for a higher temperature (by the agent or the request) are never cached: whoever asks for variety must
    /// not get the same text again. 0.5 keeps the usual deterministic settings (0 to 0.3 for code, extraction,
    /// classification) and agents that set none, and leaves out the creative range (0.7 and above).
    /// </summary>
    public float MaxTemperature { get; set; } = 0.5f;

    /// <summary>
    /// Tools without side effects whose result depends only on their arguments. A run that offers the model any other tool
    /// (remember, current_time, my_tasks, MCP tools, a client's own functions) is not cached: a replayed answer would skip
    /// the tool's effect, or repeat what the clock or the data said then. Exact names or a trailing * for a prefix.
    /// </summary>
    public string[] CacheableTools { get; set; } = [BuiltInTools.CalculatorName];

    /// <summary>Whether agents use the semantic cache when their own <c>cache.semantic</c> does not say.</summary>
    public bool Semantic { get; set; } = true;

    /// <summary>Least cosine similarity between two prompts for one's answer to serve the other, when the agent's <c>cache.semantic_threshold</c> does not say.</summary>
    public double SemanticThreshold { get; set; } = 0.95;

    /// <summary>
    /// Longer prompts skip the semantic tier (the exact tier still serves them): an embedding summarises a long text, and
    /// two long prompts that differ in one clause would look alike.
    /// </summary>
    public int SemanticMaxPromptLength { get; set; } = 4_000;

    /// <summary>
    /// Most semantic entries one group keeps (one key, or the shared scope, with one agent, system prompt, options and history);
    /// a new one beyond it replaces the one that expires first. The embedded store's search scans a group's points (about
    /// 75 µs each here: 1,000 points add about 0.1 s to every miss of the group); Qdrant's index does not.
    /// </summary>
    public int SemanticMaxEntries { get; set; } = 1_000;

    /// <summary>How long a run waits for the semantic lookup (embedding and search) before it goes on without it.</summary>
    public TimeSpan SemanticTimeout { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Longest answer kept, in characters; longer answers are not cached.</summary>
    public int MaxAnswerLength { get; set; } = 100_000;

    /// <summary>Start of the semantic cache's collection names (then the embedding space and dimension: cache_local_1024).</summary>
    public string CollectionPrefix { get; set; } = "cache";
}

/// <summary>Stops start-up on a bad "Cache" setting, naming it.</summary>
public sealed partial class CacheOptionsValidator : IValidateOptions<CacheOptions>
{
    [GeneratedRegex("^[a-z0-9][a-z0-9_-]{0,63}$")]
    private static partial Regex Prefix();

    public ValidateOptionsResult Validate(string? name, CacheOptions options)
    {
        const string section = CacheOptions.SectionName;
        var errors = new List<string>();
        if (options.DefaultTtl < TimeSpan.FromSeconds(1) || options.DefaultTtl > TimeSpan.FromSeconds(AgentCacheOptions.MaxTtlSeconds))
            errors.Add($"{section}:DefaultTtl must be between 1 second and 30 days.");
        if (!(options.MaxTemperature is >= 0 and <= 2)) errors.Add($"{section}:MaxTemperature must be between 0 and 2.");
        if (options.CacheableTools is null || options.CacheableTools.Any(string.IsNullOrWhiteSpace))
            errors.Add($"{section}:CacheableTools must be a list of tool names (a trailing * matches a prefix).");
        if (!(options.SemanticThreshold is >= AgentCacheOptions.MinSemanticThreshold and <= 1))
            errors.Add($"{section}:SemanticThreshold must be between {AgentCacheOptions.MinSemanticThreshold} and 1 (a cosine similarity).");
        if (options.SemanticMaxPromptLength is < 1 or > 100_000) errors.Add($"{section}:SemanticMaxPromptLength must be between 1 and 100,000.");
        if (options.SemanticMaxEntries is < 1 or > 10_000_000) errors.Add($"{section}:SemanticMaxEntries must be between 1 and 10,000,000.");
        if (options.SemanticTimeout <= TimeSpan.Zero || options.SemanticTimeout > TimeSpan.FromMinutes(1))
            errors.Add($"{section}:SemanticTimeout must be between 0 and 1 minute.");
        if (options.MaxAnswerLength is < 1 or > 10_000_000) errors.Add($"{section}:MaxAnswerLength must be between 1 and 10,000,000.");
        if (!Prefix().IsMatch(options.CollectionPrefix ?? ""))
            errors.Add($"{section}:CollectionPrefix must be 1-64 lower-case letters, digits, '_' or '-', starting with a letter or digit.");
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
