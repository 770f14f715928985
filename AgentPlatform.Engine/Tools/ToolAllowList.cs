namespace AgentPlatform.Engine.Tools;

/// <summary>Allow-list matching shared by keys and agents: exact names, or a trailing * for a prefix ("github_*", "*").</summary>
public static class ToolAllowList
{
    public static bool Allows(IEnumerable<string> patterns, string tool) => patterns.Any(pattern => Matches(pattern, tool));

    public static bool Matches(string pattern, string tool) =>
        pattern.EndsWith('*')
            ? tool.StartsWith(pattern[..^1], StringComparison.OrdinalIgnoreCase)
            : string.Equals(pattern, tool, StringComparison.OrdinalIgnoreCase);

    /// <summary>What a key may use: the admin everything, a key without a list everything, otherwise its list.</summary>
    public static bool KeyAllows(ToolCaller caller, string tool) =>
        caller.IsAdmin || caller.AllowedTools is null || Allows(caller.AllowedTools, tool);
}
