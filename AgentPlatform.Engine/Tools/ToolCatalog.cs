using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text.Json;
using AgentPlatform.Engine.Agents;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace AgentPlatform.Engine.Tools;

/// <summary>
/// The tools of this instance: the built-ins, plus the tools of each connected MCP server (added and
/// removed by <see cref="McpToolSource"/> as servers come and go). Every tool handed out is wrapped
/// in a <see cref="GuardedTool"/> for its caller.
/// </summary>
public sealed class ToolCatalog : IToolCatalog
{
    private readonly ConcurrentDictionary<string, RegisteredTool> _tools = new(StringComparer.OrdinalIgnoreCase);
    private readonly Lock _writes = new();
    private readonly IOptionsMonitor<ToolOptions> _options;
    private readonly ILogger<ToolCatalog> _logger;

    private sealed record RegisteredTool(AIFunction Function, string Source);

    public ToolCatalog(IOptionsMonitor<ToolOptions> options, IServiceScopeFactory scopes, TimeProvider time, ILogger<ToolCatalog> logger)
    {
        _options = options;
        _logger = logger;
        ReplaceSource(BuiltInTools.Source, new BuiltInTools(scopes, time).Create());
    }

    public IReadOnlyList<ToolDescriptor> All =>
        _tools.Values.OrderBy(t => t.Function.Name, StringComparer.Ordinal)
            .Select(t => new ToolDescriptor(t.Function.Name, t.Function.Description, t.Function.JsonSchema, t.Source))
            .ToList();

    public IReadOnlyList<ToolDescriptor> DirectlyCallableBy(ToolCaller caller) =>
        All.Where(t => ToolAllowList.KeyMayCallDirectly(caller, t.Name, t.Source)).ToList();

    public IList<AITool> ToolsFor(ToolCaller caller, AgentDefinition agent)
    {
        var offered = Offered(caller, agent);
        var tools = new List<AITool>(offered.Length);
        foreach (var tool in offered) tools.Add(Guard(tool, caller));
        return tools;
    }

    /// <summary>
    /// The catalog's tools an agent offers a key, in a stable order (an identical prompt between calls keeps the provider's
    /// prompt cache), remembered per (agent's list, key's list) until the catalog changes: every run asks, and the
    /// answer only changes with an agent, a key or an MCP server.
    /// </summary>
    private RegisteredTool[] Offered(ToolCaller caller, AgentDefinition agent)
    {
        var key = new OfferKey(agent.Tools, caller.IsAdmin ? null : caller.AllowedTools, caller.IsAdmin, Volatile.Read(ref _version));
        if (_offered.TryGetValue(key, out var offered)) return offered;
        offered = _tools.Values
            .Where(t => ToolAllowList.KeyAllows(caller, t.Function.Name) && ToolAllowList.Allows(agent.Tools, t.Function.Name))
            .OrderBy(t => t.Function.Name, StringComparer.Ordinal)
            .ToArray();
        // Bounded: keys come and go; a reset costs one computation per pair.
        if (_offered.Count >= 1_000) _offered.Clear();
        _offered[key] = offered;
        return offered;
    }

    /// <summary>The lists by reference (an agent's and a key's lists are replaced, never edited), and the catalog's version.</summary>
    private readonly record struct OfferKey(string[] AgentTools, string[]? KeyTools, bool IsAdmin, int Version)
    {
        public bool Equals(OfferKey other) => ReferenceEquals(AgentTools, other.AgentTools) && ReferenceEquals(KeyTools, other.KeyTools)
            && IsAdmin == other.IsAdmin && Version == other.Version;

        public override int GetHashCode() => HashCode.Combine(RuntimeHelpers.GetHashCode(AgentTools),
            KeyTools is null ? 0 : RuntimeHelpers.GetHashCode(KeyTools), IsAdmin, Version);
    }

    private readonly ConcurrentDictionary<OfferKey, RegisteredTool[]> _offered = new();
    private int _version;

    public async Task<ToolInvocationResult> InvokeAsync(string name, JsonElement arguments, ToolCaller caller, CancellationToken cancellationToken)
    {
        if (!_tools.TryGetValue(name, out var tool)) throw new ToolNotFoundException(name);
        if (!ToolAllowList.KeyMayCallDirectly(caller, tool.Function.Name, tool.Source)) throw new ToolForbiddenException(tool.Function.Name);
        if (arguments.ValueKind is not (JsonValueKind.Object or JsonValueKind.Undefined or JsonValueKind.Null))
            throw new ToolArgumentsException(tool.Function.Name, new Dictionary<string, string[]>
            {
                [ToolArgumentValidator.RootField] = ["The arguments must be a JSON object of parameter names and values."],
            });

        // The same shape FunctionInvokingChatClient hands a tool: parameter name → JsonElement.
        var call = new AIFunctionArguments();
        if (arguments.ValueKind == JsonValueKind.Object)
        {
            foreach (var property in arguments.EnumerateObject()) call[property.Name] = property.Value.Clone();
        }

        var run = await Guard(tool, caller).RunAsync(call, cancellationToken);
        if (run.Outcome == ToolOutcome.InvalidArguments) throw new ToolArgumentsException(tool.Function.Name, run.Errors!);
        return new ToolInvocationResult(tool.Function.Name, run.Outcome, run.Result, run.Error, run.DurationMs);
    }

    /// <summary>Makes <paramref name="tools"/> the tools of <paramref name="source"/>, replacing what it had.</summary>
    /// <returns>The names added; a name another source already uses is skipped (and logged).</returns>
    public IReadOnlyList<string> ReplaceSource(string source, IEnumerable<AIFunction> tools)
    {
        lock (_writes)
        {
            RemoveSourceLocked(source);
            var added = new List<string>();
            foreach (var tool in tools)
            {
                if (_tools.TryAdd(tool.Name, new RegisteredTool(tool, source)))
                {
                    added.Add(tool.Name);
                    continue;
                }
                _logger.LogWarning("Tool {Tool} of {Source} is not registered: {Other} already has a tool with that name",
                    tool.Name, source, _tools[tool.Name].Source);
            }
            // After the change: what was remembered under the old version is never found again.
            Interlocked.Increment(ref _version);
            return added;
        }
    }

    public void RemoveSource(string source)
    {
        lock (_writes)
        {
            RemoveSourceLocked(source);
            Interlocked.Increment(ref _version);
        }
    }

    private void RemoveSourceLocked(string source)
    {
        foreach (var (name, tool) in _tools)
        {
            if (tool.Source == source) _tools.TryRemove(name, out _);
        }
    }

    private GuardedTool Guard(RegisteredTool tool, ToolCaller caller) =>
        new(tool.Function, tool.Source, caller, _options.CurrentValue.TimeoutFor(tool.Function.Name), _logger);
}
