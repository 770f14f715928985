using System.Text.Json;
using AgentPlatform.Engine.Agents;
using Microsoft.Extensions.AI;

namespace AgentPlatform.Engine.Tools;

/// <summary>Who is calling a tool: the key (for per-key tools such as a lookup of its own tasks) and its allow-list.</summary>
/// <param name="AllowedTools">
/// The key's allow-list (a trailing * matches a prefix): null means no list (whatever the agent offers; directly,
/// the built-ins only), empty means no tool. See <see cref="ToolAllowList"/>.
/// </param>
/// <param name="User">The end user within the key (a chat request's <c>user</c>), for per-user tools such as <c>remember</c>.</param>
/// <param name="Account">What the key may spend (tier and overrides); null for the admin key, which has no key limits.</param>
public sealed record ToolCaller(Guid KeyId, string[]? AllowedTools, bool IsAdmin, string? User = null, Admission.SpendAccount? Account = null);

/// <summary>A tool as clients see it in listings.</summary>
public sealed record ToolDescriptor(string Name, string Description, JsonElement ParametersSchema, string Source);

/// <summary>The outcome of one direct tool invocation.</summary>
public sealed record ToolInvocationResult(string Tool, string Outcome, JsonElement? Result, string? Error, long DurationMs);

/// <summary>The registry of tools: built-ins and tools of MCP servers, filtered by key and agent allow-lists.</summary>
public interface IToolCatalog
{
    /// <summary>Every tool known now.</summary>
    IReadOnlyList<ToolDescriptor> All { get; }

    /// <summary>The tools the caller may run directly (POST /agent/tools/{name}); see <see cref="ToolAllowList.KeyMayCallDirectly"/>.</summary>
    IReadOnlyList<ToolDescriptor> DirectlyCallableBy(ToolCaller caller);

    /// <summary>
    /// The tools both the caller's key and the agent allow, ready for <see cref="ChatOptions.Tools"/>.
    /// Each is wrapped: arguments validated against its schema, a timeout, a span, a record in
    /// <see cref="ToolCallLog.Current"/>, and failures returned to the model as an error text.
    /// </summary>
    IList<AITool> ToolsFor(ToolCaller caller, AgentDefinition agent);

    /// <summary>Runs one tool directly (POST /agent/tools/{name}).</summary>
    /// <exception cref="ToolNotFoundException">No such tool.</exception>
    /// <exception cref="ToolForbiddenException">The key may not call it directly (its list, or an agent-private tool without a grant).</exception>
    /// <exception cref="ToolArgumentsException">The arguments do not match the tool's schema.</exception>
    Task<ToolInvocationResult> InvokeAsync(string name, JsonElement arguments, ToolCaller caller, CancellationToken cancellationToken);
}

public sealed class ToolNotFoundException(string tool) : Exception($"No tool named '{tool}'.")
{
    public string Tool { get; } = tool;
}

public sealed class ToolForbiddenException(string tool) : Exception($"This API key may not use the tool '{tool}'.")
{
    public string Tool { get; } = tool;
}

public sealed class ToolArgumentsException(string tool, IReadOnlyDictionary<string, string[]> errors)
    : Exception($"The arguments for '{tool}' do not match its schema.")
{
    public string Tool { get; } = tool;
    /// <summary>Argument name → messages, for a field-level 400.</summary>
    public IReadOnlyDictionary<string, string[]> Errors { get; } = errors;
}
