using System.Diagnostics;
using System.Text.Json;
using AgentPlatform.Engine.Agents;
using AgentPlatform.Engine.Llm;
using AgentPlatform.Engine.Routing;
using AgentPlatform.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace AgentPlatform.Tests.Routing;

/// <summary>One prompt of bench/router-eval-set.json: the agent it belongs to, and whether it is for tuning or held out.</summary>
public sealed record LabelledPrompt(string Prompt, string Agent, string Split);

/// <summary>How a router did on one part of the set, and what routing one prompt cost it.</summary>
/// <param name="Strategies">How many decisions chose each strategy (a near tie runs several agents, at several times the cost).</param>
/// <param name="NearTies">Decisions whose two best agents were within the default Router:TieBreakMargin: with a provider, each
/// would cost one tie-breaker call (once per distinct prompt).</param>
/// <param name="MissesWithinMargin">Misses whose right agent came second within that margin: what a perfect tie-breaker could fix.</param>
public sealed record EvaluationResult(string Split, int Correct, int Total, IReadOnlyList<double> LatenciesMs, IReadOnlyList<string> Misses,
    IReadOnlyDictionary<string, int> Strategies, int NearTies, int MissesWithinMargin)
{
    public double Accuracy => Total == 0 ? 0 : (double)Correct / Total;
}

/// <summary>
/// Routes the hand-written labelled set (bench/router-eval-set.json) with the platform's default agents through a real
/// <see cref="AgentRouter"/> with fresh track records, in a chosen embedding mode and without a tie-breaker: what a new
/// user without a provider gets. Shared by the router's tests and the bench's router suite.
/// </summary>
public static class RouterEvaluation
{
    public const string SetPath = "bench/router-eval-set.json";
    public static readonly string[] DefaultAgents = ["general", "research", "code", "writer", "math"];

    public static async Task<IReadOnlyList<LabelledPrompt>> LoadAsync() =>
        JsonSerializer.Deserialize<List<LabelledPrompt>>(await File.ReadAllTextAsync(Path.Combine(AppContext.BaseDirectory, SetPath)),
            new JsonSerializerOptions(JsonSerializerDefaults.Web))!;

    /// <summary>A router over the Api's agents in <paramref name="mode"/>, sharing the Api's MiniLM model, with empty track records.</summary>
    /// <param name="tieBreaker">The tie-breaker to consult (none: the scores alone decide, as without a provider).</param>
    public static AgentRouter Router(IServiceProvider services, RouterEmbedding mode, Action<RouterOptions>? configure = null,
        RoutingTieBreaker? tieBreaker = null)
    {
        var settings = new RouterOptions
        {
            Embedding = mode,
            StatsNamespace = "eval-" + Guid.NewGuid().ToString("N")[..8],
            StatsCacheDuration = TimeSpan.FromMinutes(10),
        };
        configure?.Invoke(settings);
        var options = new FixedOptions<RouterOptions>(settings);
        var stats = new AgentStats(services.GetRequiredService<StackExchange.Redis.IConnectionMultiplexer>(), options, NullLogger<AgentStats>.Instance);
        return new AgentRouter(services.GetRequiredService<AgentRegistry>(), stats, services.GetRequiredService<CircuitBreakers>(),
            RoutingEmbeddings.LocalOnly(services.GetRequiredService<MiniLmEmbeddingGenerator>()), options, tieBreaker);
    }

    /// <summary>Routes every prompt of the set once (after one warm-up call), timing each decision.</summary>
    public static async Task<IReadOnlyDictionary<string, EvaluationResult>> EvaluateAsync(AgentRouter router, IReadOnlyList<LabelledPrompt> set)
    {
        await router.RouteAsync("warm up", null, null, null, DefaultAgents.Contains, CancellationToken.None);
        var results = new Dictionary<string, (int Correct, List<double> Ms, List<string> Misses)>();
        var strategies = new Dictionary<string, Dictionary<string, int>>();
        var nearTies = new Dictionary<string, int>();
        var fixable = new Dictionary<string, int>();
        var margin = new RouterOptions().TieBreakMargin;
        foreach (var item in set)
        {
            var clock = Stopwatch.StartNew();
            var decision = await router.RouteAsync(item.Prompt, null, null, null, DefaultAgents.Contains, CancellationToken.None);
            var ms = clock.Elapsed.TotalMilliseconds;
            if (!results.TryGetValue(item.Split, out var part)) results[item.Split] = part = (0, [], []);
            part.Ms.Add(ms);
            var counts = strategies.TryGetValue(item.Split, out var found) ? found : strategies[item.Split] = [];
            counts[decision.Strategy] = counts.GetValueOrDefault(decision.Strategy) + 1;
            if (decision.Candidates.Count > 1 && decision.Candidates[0].Score - decision.Candidates[1].Score < margin)
                nearTies[item.Split] = nearTies.GetValueOrDefault(item.Split) + 1;
            if (decision.Agent == item.Agent) part.Correct++;
            else
            {
                var rank = decision.Candidates.ToList().FindIndex(c => c.Agent == item.Agent);
                var gap = rank < 0 ? double.NaN : decision.Candidates[0].Score - decision.Candidates[rank].Score;
                part.Misses.Add($"expected {item.Agent,-8} got {decision.Agent,-8} (expected ranked {rank + 1}, {gap:0.000} behind) {item.Prompt}");
                if (rank == 1 && gap < margin) fixable[item.Split] = fixable.GetValueOrDefault(item.Split) + 1;
            }
            results[item.Split] = part;
        }
        return results.ToDictionary(r => r.Key, r => new EvaluationResult(r.Key, r.Value.Correct, set.Count(s => s.Split == r.Key), r.Value.Ms, r.Value.Misses,
            strategies[r.Key], nearTies.GetValueOrDefault(r.Key), fixable.GetValueOrDefault(r.Key)));
    }

    public sealed class FixedOptions<T>(T value) : IOptionsMonitor<T>
    {
        public T CurrentValue => value;
        public T Get(string? name) => value;
        public IDisposable? OnChange(Action<T, string?> listener) => null;
    }
}
