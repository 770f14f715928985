using System.Collections.Concurrent;
using System.Diagnostics;
using System.Numerics.Tensors;
using AgentPlatform.Engine.Agents;
using AgentPlatform.Engine.Llm;
using AgentPlatform.Engine.Telemetry;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Options;

namespace AgentPlatform.Engine.Routing;

public static class Strategies
{
    public const string Single = "single";
    public const string Parallel = "parallel";
    public const string Cascade = "cascade";

    public static readonly string[] All = [Single, Parallel, Cascade];
}

public sealed record RoutingCandidate(string Agent, double Score, double Similarity, double SuccessRate, int CostTier, double? LatencyMs);

/// <summary>The router's decision, stored on the task, returned to the client and traced.</summary>
/// <param name="Embeddings">The embedding space the similarities come from: the provider's model, or "local".</param>
public sealed record RoutingDecision(string Agent, double Confidence, string Strategy, IReadOnlyList<RoutingCandidate> Candidates,
    IReadOnlyList<string> Agents, string Reason, string? Embeddings = null);

/// <summary>
/// Picks the agent (and the execution strategy) for a task: embeddings of the task against each
/// agent's description and keywords, adjusted by the agent's success rate (EMA in Redis), cost tier,
/// latency and circuit breakers. New agents are routable as soon as the registry has them.
/// </summary>
public sealed class AgentRouter(
    AgentRegistry registry, AgentStats stats, CircuitBreakers breakers, RoutingEmbeddings embeddings,
    IOptionsMonitor<RouterOptions> options)
{
    // Per embedding space: a provider vector and a local one are not comparable.
    private readonly ConcurrentDictionary<(string Space, string Agent), (string Profile, float[] Vector)> _profiles = new();

    /// <param name="requestedAgent">An agent name, or null/"auto" to let the router choose.</param>
    /// <param name="strategy">single, parallel or cascade to force one; null lets the router choose.</param>
    /// <param name="agents">Explicit participants (in order) for a parallel or cascade run.</param>
    /// <param name="mayUse">The caller's allow-list check; agents it refuses are never chosen.</param>
    /// <param name="apiKeyId">The caller, whose own feedback adjusts its ranking (and nobody else's).</param>
    public async Task<RoutingDecision> RouteAsync(string task, string? requestedAgent, string? strategy, IReadOnlyList<string>? agents,
        Func<string, bool> mayUse, CancellationToken cancellationToken, Guid? apiKeyId = null)
    {
        using var activity = PlatformTelemetry.ActivitySource.StartActivity("agent.route");
        var settings = options.CurrentValue;
        var snapshot = registry.Current;
        var auto = string.IsNullOrWhiteSpace(requestedAgent) || string.Equals(requestedAgent, AgentRegistry.Auto, StringComparison.OrdinalIgnoreCase);

        // A named agent with a single run needs no ranking (and no embedding call).
        var (ranking, space) = auto || strategy is Strategies.Parallel or Strategies.Cascade && agents is not { Count: > 0 }
            ? await RankAsync(task, snapshot, mayUse, apiKeyId, settings, cancellationToken)
            : ([], null);

        RoutingDecision decision;
        if (agents is { Count: > 0 })
        {
            decision = new RoutingDecision(agents[0], 1.0, strategy ?? Strategies.Parallel, ranking, agents, "participants given by the request");
        }
        else if (!auto)
        {
            var chosen = snapshot.Agents[requestedAgent!].Name;
            var participants = strategy is Strategies.Parallel or Strategies.Cascade
                ? new[] { chosen }.Concat(ranking.Select(c => c.Agent).Where(a => a != chosen)).Take(settings.MaxAgents).ToList()
                : [chosen];
            decision = new RoutingDecision(chosen, 1.0, strategy ?? Strategies.Single, ranking, participants, "agent named by the request");
        }
        else
        {
            // The fallback for a task no agent matches must be an agent the caller may use as well.
            var fallback = ranking.Count == 0 || mayUse(snapshot.DefaultAgent) ? snapshot.DefaultAgent : ranking[0].Agent;
            decision = Decide(ranking, fallback, strategy, settings);
        }

        // The decision shows the ten best candidates; a long tail of zero scores says nothing.
        decision = decision with { Candidates = decision.Candidates.Take(10).ToList(), Embeddings = space };
        activity?.SetTag("agent.route.agent", decision.Agent);
        activity?.SetTag("agent.route.strategy", decision.Strategy);
        activity?.SetTag("agent.route.confidence", decision.Confidence);
        activity?.SetTag("agent.route.candidates", string.Join(",", decision.Candidates.Take(5).Select(c => $"{c.Agent}:{c.Score:0.000}")));
        return decision;
    }

    private static RoutingDecision Decide(IReadOnlyList<RoutingCandidate> ranking, string defaultAgent, string? forced, RouterOptions settings)
    {
        var top = ranking.FirstOrDefault();
        if (top is null || top.Similarity < settings.MinSimilarity)
        {
            return new RoutingDecision(defaultAgent, top?.Score ?? 0, forced ?? Strategies.Single, ranking,
                forced is null or Strategies.Single ? [defaultAgent] : [defaultAgent, .. ranking.Select(c => c.Agent).Where(a => a != defaultAgent).Take(settings.MaxAgents - 1)],
                "no agent matches the task; the default agent answers");
        }

        var second = ranking.Count > 1 ? ranking[1] : null;
        var margin = second is null ? top.Score : top.Score - second.Score;
        var confidence = Math.Clamp(top.Score, 0, 1);
        string strategy;
        string reason;
        if (forced is not null)
        {
            (strategy, reason) = (forced, "strategy forced by the request");
        }
        else if (second is null || margin >= settings.SingleMargin)
        {
            (strategy, reason) = (Strategies.Single, $"clear lead of {margin:0.000} over the runner-up");
        }
        else if (second.Score >= settings.CascadeThreshold)
        {
            (strategy, reason) = (Strategies.Cascade, "two agents match strongly: the task spans both fields");
        }
        else if (top.Similarity >= settings.ParallelMinSimilarity)
        {
            (strategy, reason) = (Strategies.Parallel, $"a lead of only {margin:0.000}: the best of several answers");
        }
        else
        {
            (strategy, reason) = (Strategies.Single, "weak match everywhere: not worth several runs");
        }

        var participants = strategy == Strategies.Single
            ? [top.Agent]
            : ranking.Where(c => c.Similarity >= settings.MinSimilarity).Take(settings.MaxAgents).Select(c => c.Agent).ToList();
        if (participants.Count < 2 && strategy != Strategies.Single && forced is null) (strategy, participants) = (Strategies.Single, [top.Agent]);
        if (participants.Count < 2 && strategy != Strategies.Single) participants = ranking.Take(settings.MaxAgents).Select(c => c.Agent).ToList();
        return new RoutingDecision(top.Agent, confidence, strategy, ranking, participants, reason);
    }

    private async Task<(IReadOnlyList<RoutingCandidate> Ranking, string? Space)> RankAsync(string task, AgentSnapshot snapshot,
        Func<string, bool> mayUse, Guid? apiKeyId, RouterOptions settings, CancellationToken cancellationToken)
    {
        var agents = snapshot.All.Where(a => mayUse(a.Name)).ToList();
        if (agents.Count == 0) return ([], null);

        // The task and the profiles not yet known in the provider's space, in one call; if the provider could not
        // answer, everything is embedded locally (microseconds), so all vectors share one space.
        var space = embeddings.PreferredSpace;
        var missing = agents.Where(a => !_profiles.TryGetValue((space, a.Name), out var p) || p.Profile != ProfileOf(a)).ToList();
        var embedded = await embeddings.EmbedAsync([task, .. missing.Select(ProfileOf)], cancellationToken);
        if (embedded.Space != space)
        {
            space = embedded.Space;
            missing = agents.Where(a => !_profiles.TryGetValue((space, a.Name), out var p) || p.Profile != ProfileOf(a)).ToList();
            embedded = embeddings.EmbedLocally([task, .. missing.Select(ProfileOf)]);
        }
        for (var i = 0; i < missing.Count; i++) _profiles[(space, missing[i].Name)] = (ProfileOf(missing[i]), embedded.Vectors[i + 1]);
        var query = embedded.Vectors[0];

        var records = await stats.ReadAsync();
        var feedback = apiKeyId is { } keyId ? await stats.ReadFeedbackAsync(keyId) : new Dictionary<string, double>();
        var ranking = new List<RoutingCandidate>(agents.Count);
        foreach (var agent in agents)
        {
            // A text with no usable words embeds to a zero vector, whose cosine is NaN: it matches nothing.
            var similarity = Finite((double)TensorPrimitives.CosineSimilarity(query, _profiles[(space, agent.Name)].Vector));
            var record = records.GetValueOrDefault(agent.Name, new AgentTrackRecord(settings.PriorSuccessRate, null));
            record = new AgentTrackRecord(Finite(record.SuccessRate, settings.PriorSuccessRate),
                record.LatencyMs is { } latency && double.IsFinite(latency) ? latency : null);
            if (feedback.TryGetValue(agent.Name, out var rated))
                record = record with { SuccessRate = (1 - settings.FeedbackWeight) * record.SuccessRate + settings.FeedbackWeight * Finite(rated, record.SuccessRate) };
            var costTier = agent.Models.FirstOrDefault()?.CostTier ?? 1;
            var score = similarity * (1 - settings.SuccessWeight + settings.SuccessWeight * record.SuccessRate)
                        - settings.CostWeight * (costTier - 1)
                        - settings.LatencyWeight * Math.Min(1, (record.LatencyMs ?? 0) / settings.LatencyBudgetMs);
            // An agent whose every model has an open breaker cannot answer now.
            var chain = breakers.ForAgent(agent.Name).ToList();
            if (chain.Count > 0 && chain.All(b => b.EffectiveState == Polly.CircuitBreaker.CircuitState.Open)) score -= 1;
            ranking.Add(new RoutingCandidate(agent.Name, Math.Round(score, 4), Math.Round(similarity, 4), Math.Round(record.SuccessRate, 4), costTier,
                record.LatencyMs is { } ms ? Math.Round(ms, 1) : null));
        }
        return (ranking.OrderByDescending(c => c.Score).ThenBy(c => c.CostTier).ThenBy(c => c.Agent, StringComparer.Ordinal).ToList(), space);
    }

    private static double Finite(double value, double fallback = 0) => double.IsFinite(value) ? value : fallback;

    // Keywords are the sharpest signal an agent's author gives; they count twice.
    private static string ProfileOf(AgentDefinition agent) =>
        $"{agent.Name} {agent.Description} {string.Join(' ', agent.Keywords)} {string.Join(' ', agent.Keywords)}";
}
