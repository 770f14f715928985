using System.Collections.Concurrent;
using AgentPlatform.Engine.Agents;
using AgentPlatform.Engine.Billing;
using AgentPlatform.Engine.Llm;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace AgentPlatform.Engine.Execution;

/// <summary>
/// Each agent's LLM pipeline, read top to bottom:
/// function invocation (tools) → fallback over the model chain → per model: circuit breaker →
/// metering (metrics, the run's log, the usage ledger) → OpenTelemetry → logging → provider. Rebuilt when the agent's definition changes;
/// breakers outlive rebuilds.
/// </summary>
public sealed class AgentClients(ChatClientPool pool, CircuitBreakers breakers, IOptions<LlmOptions> llm, UsageLedger ledger,
    ILoggerFactory loggerFactory)
{
    private readonly ConcurrentDictionary<string, (AgentDefinition Definition, IChatClient Client, FallbackChatClient Chain)> _clients =
        new(StringComparer.OrdinalIgnoreCase);

    public IChatClient For(AgentDefinition agent) => Entry(agent, cheapestFirst: false).Client;

    /// <param name="cheapestFirst">The chain ordered by price, cheapest first (cost-aware degrade near a budget).</param>
    public IChatClient For(AgentDefinition agent, bool cheapestFirst) => Entry(agent, cheapestFirst).Client;

    /// <summary>The resolved chain: (provider, model) in the order they are tried.</summary>
    public IReadOnlyList<FallbackChatClient.Link> ChainOf(AgentDefinition agent, bool cheapestFirst = false) => Entry(agent, cheapestFirst).Chain.Chain;

    /// <summary>Whether the cheapest-first chain starts with another (cheaper) model than the agent's own order.</summary>
    public bool HasCheaperFirst(AgentDefinition agent) => ChainOf(agent, true)[0].Model != ChainOf(agent)[0].Model;

    private (AgentDefinition Definition, IChatClient Client, FallbackChatClient Chain) Entry(AgentDefinition agent, bool cheapestFirst)
    {
        var name = cheapestFirst ? agent.Name + "\n" + "cheapest-first" : agent.Name;
        if (_clients.TryGetValue(name, out var entry) && ReferenceEquals(entry.Definition, agent)) return entry;
        var built = Build(agent, cheapestFirst);
        _clients[name] = built;
        return built;
    }

    /// <summary>The model an option resolves to (its own, or the provider's default).</summary>
    public string ResolvedModel(ModelOption option) => pool.Resolve(option.Provider, option.Model).Model;

    public static IReadOnlyList<ModelOption> OptionsOf(AgentDefinition agent) =>
        agent.Models.Count > 0 ? agent.Models : [new ModelOption { Provider = LlmOptions.DefaultProvider, Model = agent.Model ?? "" }];

    private (AgentDefinition, IChatClient, FallbackChatClient) Build(AgentDefinition agent, bool cheapestFirst)
    {
        // Stable: models of equal price keep the agent's order. Price of a call of 1K tokens in and out.
        var options = cheapestFirst
            ? OptionsOf(agent).OrderBy(o => llm.Value.CostOf(ResolvedModel(o), 1000, 1000, o.InputPer1K, o.OutputPer1K)).ToList()
            : OptionsOf(agent);
        var links = options
            .Select(option => (Option: option, Resolved: pool.Resolve(option.Provider, option.Model)))
            .DistinctBy(o => o.Resolved)
            .Select(o => new FallbackChatClient.Link(o.Resolved.Provider, o.Resolved.Model,
                new CircuitBreakerChatClient(
                    new ChatClientBuilder(pool.For(o.Resolved.Provider, o.Resolved.Model))
                        .UseMetering(llm.Value, o.Resolved.Model, o.Option.InputPer1K, o.Option.OutputPer1K, ledger, agent.Name)
                        .Build(),
                    breakers.For(new BreakerKey(agent.Name, o.Resolved.Provider, o.Resolved.Model)))))
            .ToList();
        var chain = new FallbackChatClient(agent.Name, links);
        var client = new ChatClientBuilder(chain)
            .UseFunctionInvocation(loggerFactory, invocation =>
            {
                invocation.MaximumIterationsPerRequest = 8;
                invocation.AllowConcurrentInvocation = true;
            })
            .Build();
        return (agent, client, chain);
    }
}
