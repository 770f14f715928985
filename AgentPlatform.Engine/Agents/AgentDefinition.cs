using System.ComponentModel.DataAnnotations;

namespace AgentPlatform.Engine.Agents;

/// <summary>One named agent: what it is for, how it is prompted, which model answers.</summary>
public sealed class AgentDefinition
{
    public string Name { get; set; } = "";

    [Required]
    public string Description { get; set; } = "";

    [Required]
    public string SystemPrompt { get; set; } = "";

    /// <summary>Model id at the provider; empty means the provider's default model.</summary>
    public string? Model { get; set; }

    public string[] Keywords { get; set; } = [];

    [Range(0.0, 2.0)]
    public float? Temperature { get; set; }

    [Range(1, 1_000_000)]
    public int? MaxOutputTokens { get; set; }
}

/// <summary>Binds the "Agents" section: a map of agent name to definition, plus the default agent.</summary>
public sealed class AgentOptions
{
    public const string SectionName = "Agents";

    /// <summary>The agent that answers "auto" until the router arrives, and when no agent_type is given.</summary>
    [Required]
    public string DefaultAgent { get; set; } = "general";

    public Dictionary<string, AgentDefinition> Definitions { get; set; } = new(StringComparer.OrdinalIgnoreCase);
}
