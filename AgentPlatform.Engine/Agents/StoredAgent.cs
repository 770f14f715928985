namespace AgentPlatform.Engine.Agents;

/// <summary>An agent created or changed through the admin API; it overrides a configured agent of the same name.</summary>
public sealed class StoredAgent
{
    public string Name { get; set; } = "";
    /// <summary>The <see cref="AgentDefinition"/> as JSON.</summary>
    public string DefinitionJson { get; set; } = "";
    public DateTimeOffset UpdatedAt { get; set; }
}
