using Microsoft.Extensions.Options;

namespace AgentPlatform.Engine.Agents;

/// <summary>The agents this instance knows, read from configuration (reloaded on change).</summary>
public sealed class AgentCatalog(IOptionsMonitor<AgentOptions> options)
{
    public const string Auto = "auto";

    public IReadOnlyList<AgentDefinition> All =>
        options.CurrentValue.Definitions.Select(pair => WithName(pair.Key, pair.Value)).OrderBy(a => a.Name).ToList();

    public AgentDefinition? Find(string name) =>
        options.CurrentValue.Definitions.TryGetValue(name, out var agent) ? WithName(name, agent) : null;

    /// <summary>Resolves a requested agent type; null or "auto" means the default agent.</summary>
    public AgentDefinition? Resolve(string? agentType) =>
        string.IsNullOrWhiteSpace(agentType) || string.Equals(agentType, Auto, StringComparison.OrdinalIgnoreCase)
            ? Find(options.CurrentValue.DefaultAgent)
            : Find(agentType);

    private static AgentDefinition WithName(string name, AgentDefinition agent)
    {
        agent.Name = name;
        return agent;
    }
}
