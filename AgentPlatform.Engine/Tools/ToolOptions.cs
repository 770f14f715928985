using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;

namespace AgentPlatform.Engine.Tools;

/// <summary>Binds "Tools": call time limits and the MCP servers whose tools join the catalog.</summary>
public sealed class ToolOptions
{
    public const string SectionName = "Tools";

    /// <summary>Time limit of one tool call; a slower call ends as outcome "timeout".</summary>
    public TimeSpan CallTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Per-tool time limits (tool name → limit) that override <see cref="CallTimeout"/>.</summary>
    public Dictionary<string, TimeSpan> Timeouts { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    public McpOptions Mcp { get; set; } = new();

    public TimeSpan TimeoutFor(string tool) => Timeouts.TryGetValue(tool, out var timeout) ? timeout : CallTimeout;
}

public sealed class McpOptions
{
    /// <summary>Server name → how to reach it. The name prefixes its tools: server "files", tool "read" → "files_read".</summary>
    public Dictionary<string, McpServerOptions> Servers { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>How long to wait before connecting again to a server that failed or went away.</summary>
    public TimeSpan RetryInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Time limit for connecting to a server and listing its tools.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(30);
}

/// <summary>One MCP server: either a command speaking MCP over stdio, or an HTTP endpoint.</summary>
public sealed class McpServerOptions
{
    /// <summary>stdio: the executable to start (e.g. "npx", "uvx", "dotnet").</summary>
    public string? Command { get; set; }

    public string[] Arguments { get; set; } = [];

    /// <summary>stdio: variables for the server process, on top of a minimal safe environment (PATH, HOME…).</summary>
    public Dictionary<string, string> Environment { get; set; } = new(StringComparer.Ordinal);

    public string? WorkingDirectory { get; set; }

    /// <summary>HTTP: the server's endpoint; Streamable HTTP is tried first, then SSE.</summary>
    public string? Url { get; set; }

    /// <summary>HTTP: extra request headers, e.g. Authorization.</summary>
    public Dictionary<string, string> Headers { get; set; } = new(StringComparer.OrdinalIgnoreCase);
}

/// <summary>Stops start-up on a tool configuration that cannot work, naming the setting.</summary>
public sealed partial class ToolOptionsValidator : IValidateOptions<ToolOptions>
{
    public ValidateOptionsResult Validate(string? name, ToolOptions options)
    {
        var errors = new List<string>();
        if (options.CallTimeout <= TimeSpan.Zero || options.CallTimeout > TimeSpan.FromHours(1))
            errors.Add($"{ToolOptions.SectionName}:CallTimeout must be between 00:00:00.001 and 01:00:00.");
        foreach (var (tool, timeout) in options.Timeouts)
        {
            if (timeout <= TimeSpan.Zero || timeout > TimeSpan.FromHours(1))
                errors.Add($"{ToolOptions.SectionName}:Timeouts:{tool} must be between 00:00:00.001 and 01:00:00.");
        }
        if (options.Mcp.RetryInterval <= TimeSpan.Zero)
            errors.Add($"{ToolOptions.SectionName}:Mcp:RetryInterval must be positive.");
        if (options.Mcp.ConnectTimeout <= TimeSpan.Zero)
            errors.Add($"{ToolOptions.SectionName}:Mcp:ConnectTimeout must be positive.");

        foreach (var (server, settings) in options.Mcp.Servers)
        {
            var setting = $"{ToolOptions.SectionName}:Mcp:Servers:{server}";
            // The name becomes a prefix of tool names, which OpenAI restricts to ^[a-zA-Z0-9_-]{1,64}$.
            if (!ServerName().IsMatch(server))
                errors.Add($"{setting}: the server name must be 1 to 32 letters, digits, '_' or '-'.");
            var hasCommand = !string.IsNullOrWhiteSpace(settings.Command);
            var hasUrl = !string.IsNullOrWhiteSpace(settings.Url);
            if (hasCommand == hasUrl)
                errors.Add($"{setting} needs either Command (a stdio server) or Url (an HTTP server), not {(hasCommand ? "both" : "neither")}.");
            if (hasUrl && !(Uri.TryCreate(settings.Url, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https"))
                errors.Add($"{setting}:Url must be an absolute http(s) URL.");
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    [GeneratedRegex("^[a-zA-Z0-9_-]{1,32}$")]
    private static partial Regex ServerName();
}
