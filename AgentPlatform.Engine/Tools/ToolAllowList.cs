namespace AgentPlatform.Engine.Tools;

/// <summary>
/// Who may run which tool. Patterns are exact names, or a trailing * for a prefix ("github_*", "*"),
/// matched without regard to case. A key's list: null means no list, [] means no tool at all.
/// </summary>
/// <remarks>
/// A tool runs through an agent only when the agent's <c>Tools</c> list and the key both allow it
/// (<see cref="KeyAllows"/>). Called directly (POST /agent/tools/{tool}), no agent stands between
/// the key and the tool, so agent-private tools need the key's own grant (<see cref="KeyMayCallDirectly"/>).
/// </remarks>
public static class ToolAllowList
{
    public static bool Allows(IEnumerable<string> patterns, string tool) => patterns.Any(pattern => Matches(pattern, tool));

    public static bool Matches(string pattern, string tool) =>
        pattern.EndsWith('*')
            ? tool.StartsWith(pattern[..^1], StringComparison.OrdinalIgnoreCase)
            : string.Equals(pattern, tool, StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Whether a tool is agent-private: every tool that is not one of the platform's built-ins, that is
    /// every MCP server's tool. The built-ins act only within the caller's own scope (arithmetic, the
    /// clock, the key's own tasks); an MCP server acts with the credentials the operator configured for
    /// the agents that name it, so it is theirs, whether one agent names it, several, or none yet.
    /// Decided by source rather than by the agents' lists because those lists change at run time
    /// (PUT /admin/agents) and a tool must not become public because an agent stopped naming it.
    /// </summary>
    public static bool IsAgentPrivate(string source) => !string.Equals(source, BuiltInTools.Source, StringComparison.Ordinal);

    /// <summary>
    /// What a key allows inside an agent's run (the agent's list is checked as well): the admin
    /// everything, a key without a list whatever the agent offers, otherwise what its list names.
    /// </summary>
    public static bool KeyAllows(ToolCaller caller, string tool) =>
        caller.IsAdmin || caller.AllowedTools is null || Allows(caller.AllowedTools, tool);

    /// <summary>
    /// What a key may call directly: the admin everything; a key without a list the built-ins only;
    /// otherwise what its list names — an explicit grant, such as "github_*" or "*", is the only way
    /// to an agent-private tool.
    /// </summary>
    public static bool KeyMayCallDirectly(ToolCaller caller, string tool, string source) =>
        caller.IsAdmin || (caller.AllowedTools is null ? !IsAgentPrivate(source) : Allows(caller.AllowedTools, tool));
}
