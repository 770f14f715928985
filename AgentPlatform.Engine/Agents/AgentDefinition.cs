using System.ComponentModel.DataAnnotations;
using System.Text.Json.Serialization;

namespace AgentPlatform.Engine.Agents;

/// <summary>One named agent: what it is for, how it is prompted, which models answer, which tools it may use.</summary>
public sealed class AgentDefinition
{
    /// <summary>Set from the registry key (configuration section name or URL), never from a request body.</summary>
    [JsonIgnore]
    public string Name { get; set; } = "";

    [Required, MaxLength(2000)]
    public string Description { get; set; } = "";

    [Required, MaxLength(20_000)]
    public string SystemPrompt { get; set; } = "";

    /// <summary>Shorthand for a one-model chain on the default provider; empty means the provider's default model.</summary>
    [MaxLength(200)]
    public string? Model { get; set; }

    /// <summary>The model chain: the primary first, then fallbacks, tried past open circuit breakers.</summary>
    public List<ModelOption> Models { get; set; } = [];

    /// <summary>Words that describe the agent's field; the router embeds them with the description.</summary>
    public string[] Keywords { get; set; } = [];

    /// <summary>
    /// A few tasks this agent is for, written as a user would ask them. The router compares a prompt with each one (and with
    /// the description and keywords): an agent is recognised by what its users ask, not only by the words of its field.
    /// </summary>
    public string[] Examples { get; set; } = [];

    /// <summary>Tool names (a trailing * matches a prefix) the agent may use; none when empty.</summary>
    public string[] Tools { get; set; } = [];

    [Range(0.0, 2.0)]
    public float? Temperature { get; set; }

    [Range(1, 1_000_000)]
    public int? MaxOutputTokens { get; set; }

    /// <summary>
    /// The context window (tokens) a conversation's history is fitted to, when not the model's published one (or for a
    /// model the platform does not know; Conversations:DefaultContextWindow otherwise).
    /// </summary>
    [Range(256, 10_000_000)]
    public int? ContextWindowTokens { get; set; }

    /// <summary>What this agent may spend per UTC day across every key (USD); none when null.</summary>
    [Range(0.0, 1_000_000.0)]
    public decimal? DailyBudgetUsd { get; set; }

    /// <summary>Time limit for one run of this agent (all fallbacks and tool calls included).</summary>
    [Range(1, 3600)]
    public int TimeoutSeconds { get; set; } = 120;

    /// <summary>How the agent uses long-term memory in chats. Storing facts is the <c>remember</c> tool, listed in <see cref="Tools"/>.</summary>
    public AgentMemoryOptions Memory { get; set; } = new();

    /// <summary>How the agent's answers are cached; each setting left out follows the "Cache" section.</summary>
    public AgentCacheOptions Cache { get; set; } = new();
}

/// <summary>An agent's long-term memory settings.</summary>
public sealed class AgentMemoryOptions
{
    /// <summary>Whether a chat with this agent recalls the caller's memories relevant to the new message (see Memory:RecallLimit).</summary>
    public bool Recall { get; set; } = true;
}

/// <summary>An agent's response-cache settings; null means the "Cache" section's default.</summary>
public sealed class AgentCacheOptions
{
    public const int MaxTtlSeconds = 30 * 24 * 3600;
    public const double MinSemanticThreshold = 0.5;

    /// <summary>Whether answers of this agent are cached at all (Cache:Enabled when null).</summary>
    public bool? Enabled { get; set; }

    /// <summary>How long an answer is served, in seconds (Cache:DefaultTtl when null).</summary>
    [Range(1, MaxTtlSeconds)]
    public int? TtlSeconds { get; set; }

    /// <summary>
    /// One cache for every API key instead of one per key: for public agents, where any caller may get the answer another
    /// caller got to the same prompt (or, semantically, to a prompt of the same meaning).
    /// </summary>
    public bool Shared { get; set; }

    /// <summary>Whether prompts of the same meaning are served too, not only identical ones (Cache:Semantic when null).</summary>
    public bool? Semantic { get; set; }

    /// <summary>Least cosine similarity for a semantic hit (Cache:SemanticThreshold when null).</summary>
    [Range(MinSemanticThreshold, 1.0)]
    public double? SemanticThreshold { get; set; }
}

/// <summary>One model of an agent's chain.</summary>
public sealed class ModelOption
{
    /// <summary>A provider under Llm:Providers, or "default" (the openai connection string).</summary>
    [MaxLength(100)]
    public string Provider { get; set; } = "default";

    [Required, MaxLength(200)]
    public string Model { get; set; } = "";

    /// <summary>USD per 1K input tokens; when null the price table under Llm:Pricing applies.</summary>
    [Range(0.0, 1000.0), JsonPropertyName("input_per_1k")]
    public decimal? InputPer1K { get; set; }

    [Range(0.0, 1000.0), JsonPropertyName("output_per_1k")]
    public decimal? OutputPer1K { get; set; }

    /// <summary>1 (cheapest) to 5 (most expensive): the router prefers cheaper agents when scores tie.</summary>
    [Range(1, 5)]
    public int CostTier { get; set; } = 1;
}

/// <summary>Binds the "Agents" section: a map of agent name to definition, plus the default agent.</summary>
public sealed class AgentOptions
{
    public const string SectionName = "Agents";

    /// <summary>The agent that answers when the router has no better candidate.</summary>
    [Required]
    public string DefaultAgent { get; set; } = "general";

    public Dictionary<string, AgentDefinition> Definitions { get; set; } = new(StringComparer.OrdinalIgnoreCase);
}
