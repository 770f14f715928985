using System.Collections.Concurrent;
using System.Diagnostics;
using System.Numerics.Tensors;
using AgentPlatform.Engine.Agents;
using AgentPlatform.Engine.Llm;
using AgentPlatform.Engine.Telemetry;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
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
/// <param name="Embeddings">The embedding space the similarities come from: the provider's model, "all-MiniLM-L6-v2", or "local" (hashed).</param>
/// <param name="TieBreak">What the LLM tie-breaker did (outcome, cost), when the two best agents were within Router:TieBreakMargin.</param>
public sealed record RoutingDecision(string Agent, double Confidence, string Strategy, IReadOnlyList<RoutingCandidate> Candidates,
    IReadOnlyList<string> Agents, string Reason, string? Embeddings = null, RoutingTieBreak? TieBreak = null);

/// <summary>
/// Picks the agent (and the execution strategy) for a task: embeddings of the task against each agent's example tasks,
/// description and keywords (in the Router:Embedding space), adjusted by the agent's success rate (EMA in Redis), cost tier,
/// latency and circuit breakers; a near tie between the two best may be settled by <see cref="RoutingTieBreaker"/>.
/// New agents are routable by their examples as soon as the registry has them.
/// </summary>
public sealed class AgentRouter(
    AgentRegistry registry, AgentStats stats, CircuitBreakers breakers, RoutingEmbeddings embeddings,
    IOptionsMonitor<RouterOptions> options, RoutingTieBreaker? tieBreaker = null, ILogger<AgentRouter>? logger = null)
{
    /// <summary>An agent's reference vectors: its profile (name, description, keywords) and each example task.</summary>
    private sealed record AgentReference(string Fingerprint, float[] Profile, float[][] Examples);

    // Per embedding space (a provider vector and a local one are not comparable), the references of one registry snapshot.
    // A new snapshot re-embeds only the agents whose texts changed; a request on a known snapshot embeds only its prompt.
    private readonly ConcurrentDictionary<string, (long Version, IReadOnlyDictionary<string, AgentReference> Agents)> _references = new();

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
            if (await BreakTieAsync(task, ranking, snapshot, strategy, settings, cancellationToken) is { } tieBreak)
            {
                decision = tieBreak.Outcome == RoutingTieBreaker.Decided
                    ? decision with
                    {
                        Agent = tieBreak.Agent!, Strategy = Strategies.Single, Agents = [tieBreak.Agent!],
                        Confidence = Math.Clamp(ranking.First(c => c.Agent == tieBreak.Agent).Score, 0, 1),
                        Reason = $"{ranking[0].Agent} and {ranking[1].Agent} within {settings.TieBreakMargin:0.###}: the model chose",
                        TieBreak = tieBreak,
                    }
                    : decision with { TieBreak = tieBreak };
            }
        }

        // The decision shows the ten best candidates; a long tail of zero scores says nothing.
        decision = decision with { Candidates = decision.Candidates.Take(10).ToList(), Embeddings = space };
        activity?.SetTag("agent.route.agent", decision.Agent);
        activity?.SetTag("agent.route.strategy", decision.Strategy);
        activity?.SetTag("agent.route.confidence", decision.Confidence);
        activity?.SetTag("agent.route.candidates", string.Join(",", decision.Candidates.Take(5).Select(c => $"{c.Agent}:{c.Score:0.000}")));
        return decision;
    }

    /// <summary>
    /// One classification call when the two best agents are within the margin, a provider is configured, and the request
    /// leaves the choice of a single agent to the router; null when no call is due.
    /// </summary>
    private async Task<RoutingTieBreak?> BreakTieAsync(string task, IReadOnlyList<RoutingCandidate> ranking, AgentSnapshot snapshot, string? strategy,
        RouterOptions settings, CancellationToken cancellationToken)
    {
        if (tieBreaker is not { IsAvailable: true } || settings.TieBreakMargin <= 0 || strategy is not (null or Strategies.Single)) return null;
        if (ranking.Count < 2 || ranking[0].Similarity < settings.MinSimilarity || ranking[0].Score - ranking[1].Score >= settings.TieBreakMargin)
            return null;
        if (!snapshot.Agents.TryGetValue(ranking[0].Agent, out var first) || !snapshot.Agents.TryGetValue(ranking[1].Agent, out var second))
            return null;
        var tieBreak = await tieBreaker.DecideAsync(task, first, second, cancellationToken);
        Activity.Current?.SetTag("agent.route.tie_break", tieBreak.Outcome);
        return tieBreak;
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

        var (query, references, space) = await EmbedAsync(task, snapshot, settings, cancellationToken);
        // In a semantic space the hashed one still counts a little: it hears the exact words an agent's author chose
        // (keywords, names of languages and tools) that a small sentence model blurs. Microseconds, and cached alike.
        var lexical = space != RoutingEmbeddings.LocalSpace && settings.LexicalWeight > 0
            ? Local(task, snapshot, RouterEmbedding.Hashed)
            : default;
        var records = await stats.ReadAsync();
        var feedback = apiKeyId is { } keyId ? await stats.ReadFeedbackAsync(keyId) : new Dictionary<string, double>();
        var ranking = new List<RoutingCandidate>(agents.Count);
        foreach (var agent in agents)
        {
            var similarity = Similarity(query, references[agent.Name], settings.ExampleWeight, settings.ClosestExamples);
            if (lexical.References is not null)
                similarity = (1 - settings.LexicalWeight) * similarity
                             + settings.LexicalWeight * Similarity(lexical.Query, lexical.References[agent.Name], settings.ExampleWeight, settings.ClosestExamples);
            // The default agent is the catch-all: a specialist takes a prompt only when it is clearly closer.
            if (string.Equals(agent.Name, snapshot.DefaultAgent, StringComparison.OrdinalIgnoreCase)) similarity += settings.DefaultAgentBias;
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

    /// <summary>
    /// How well the prompt matches the agent. Examples say what users of the agent ask, so the closest ones carry most of the
    /// weight; the profile (description and keywords) is what every prompt is also held against, so an agent is never judged
    /// by one lucky example alone, and agents without examples compete on their profile as before:
    /// w × max(mean cos to the <paramref name="closest"/> closest examples, cos to the profile) + (1 − w) × cos to the profile.
    /// Chosen on the tuning part of bench/router-eval-set.json (MiniLM): the mean of the two closest examples (86 %) beat the
    /// closest one alone (81-84 % for w from 0.5 to 0.9), the three closest (85 %), the examples' centroid (74 %) and the
    /// profile alone (61 %); with the two closest, w = 0.7 beat w = 0.5 (80 %).
    /// </summary>
    private static double Similarity(float[] query, AgentReference agent, double exampleWeight, int closest)
    {
        var profile = Cosine(query, agent.Profile);
        if (agent.Examples.Length == 0) return profile;
        Span<double> best = stackalloc double[Math.Min(closest, agent.Examples.Length)];
        best.Fill(double.MinValue);
        foreach (var example in agent.Examples)
        {
            // Keeps the few best in descending order (a handful of examples: insertion beats sorting).
            var similarity = Cosine(query, example);
            for (var i = 0; i < best.Length; i++)
            {
                if (similarity <= best[i]) continue;
                for (var j = best.Length - 1; j > i; j--) best[j] = best[j - 1];
                best[i] = similarity;
                break;
            }
        }
        var mean = 0.0;
        foreach (var value in best) mean += value;
        return exampleWeight * Math.Max(profile, mean / best.Length) + (1 - exampleWeight) * profile;
    }

    // A text with no usable words embeds to a zero vector, whose cosine is NaN: it matches nothing.
    private static double Cosine(float[] a, float[] b) => a.Length == b.Length ? Finite(TensorPrimitives.CosineSimilarity(a, b)) : 0;

    /// <summary>
    /// The prompt's vector and the references of every agent of the snapshot, in one space: the provider's when the mode asks
    /// for it and it answers, else the local mode's. Agents whose texts are not embedded in that space yet go in the same
    /// batch as the prompt (after a registry change, once).
    /// </summary>
    private async Task<(float[] Query, IReadOnlyDictionary<string, AgentReference> References, string Space)> EmbedAsync(
        string task, AgentSnapshot snapshot, RouterOptions settings, CancellationToken cancellationToken)
    {
        if (settings.Embedding == RouterEmbedding.Provider && embeddings.HasProvider)
        {
            var space = embeddings.PreferredSpace;
            var (texts, pending, known) = Pending(space, snapshot, task);
            if (await embeddings.TryProviderAsync(texts, cancellationToken) is { } provided)
                return (provided.Vectors[0], Complete(space, snapshot, pending, provided.Vectors, known), space);
        }
        var local = RoutingEmbeddings.LocalMode(settings.Embedding, settings.FallbackEmbedding);
        if (local == RouterEmbedding.MiniLM)
        {
            try
            {
                var (query, references) = Local(task, snapshot, local);
                return (query, references, RoutingEmbeddings.SpaceOf(local));
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // The model could not be loaded or run (a missing native library, say): routing goes on with the hashed words.
                logger?.LogError(e, "The router's {Model} model failed; routing with the hashed embedding", MiniLmEmbeddingGenerator.ModelName);
            }
        }
        var (hashedQuery, hashedReferences) = Local(task, snapshot, RouterEmbedding.Hashed);
        return (hashedQuery, hashedReferences, RoutingEmbeddings.LocalSpace);
    }

    private (float[] Query, IReadOnlyDictionary<string, AgentReference> References) Local(string task, AgentSnapshot snapshot, RouterEmbedding mode)
    {
        var space = RoutingEmbeddings.SpaceOf(mode);
        var (texts, pending, known) = Pending(space, snapshot, task);
        var embedded = embeddings.EmbedLocally(texts, mode);
        return (embedded.Vectors[0], Complete(space, snapshot, pending, embedded.Vectors, known));
    }

    /// <summary>The texts to embed (the prompt first, then each pending agent's profile and examples) and which agents they are for.</summary>
    /// <returns>The texts to embed, the agents they are for, and the references they complete (whose version may be older).</returns>
    private (List<string> Texts, List<(AgentDefinition Agent, string Fingerprint)> Pending, (long Version, IReadOnlyDictionary<string, AgentReference>? Agents) Known)
        Pending(string space, AgentSnapshot snapshot, string task)
    {
        var texts = new List<string> { task };
        var pending = new List<(AgentDefinition, string)>();
        var known = _references.TryGetValue(space, out var found) ? found : default;
        if (known.Agents is not null && known.Version == snapshot.Version) return (texts, pending, known);
        foreach (var agent in snapshot.All)
        {
            var fingerprint = FingerprintOf(agent);
            if (known.Agents?.TryGetValue(agent.Name, out var reference) == true && reference.Fingerprint == fingerprint) continue;
            pending.Add((agent, fingerprint));
            texts.Add(ProfileOf(agent));
            texts.AddRange(agent.Examples);
        }
        return (texts, pending, known);
    }

    private IReadOnlyDictionary<string, AgentReference> Complete(string space, AgentSnapshot snapshot,
        List<(AgentDefinition Agent, string Fingerprint)> pending, IReadOnlyList<float[]> vectors,
        (long Version, IReadOnlyDictionary<string, AgentReference>? Agents) known)
    {
        if (known.Agents is not null && known.Version == snapshot.Version) return known.Agents;
        var references = new Dictionary<string, AgentReference>(StringComparer.OrdinalIgnoreCase);
        var next = 1;
        foreach (var (agent, fingerprint) in pending)
        {
            var profile = vectors[next++];
            var examples = vectors.Skip(next).Take(agent.Examples.Length).ToArray();
            next += agent.Examples.Length;
            references[agent.Name] = new AgentReference(fingerprint, profile, examples);
        }
        foreach (var agent in snapshot.All)
            if (!references.ContainsKey(agent.Name)) references[agent.Name] = known.Agents![agent.Name];
        _references[space] = (snapshot.Version, references);
        return references;
    }

    private static string FingerprintOf(AgentDefinition agent) => ProfileOf(agent) + "\u001f" + string.Join("\u001f", agent.Examples);

    private static double Finite(double value, double fallback = 0) => double.IsFinite(value) ? value : fallback;

    // Keywords are the sharpest signal an agent's author gives; they count twice.
    private static string ProfileOf(AgentDefinition agent) =>
        $"{agent.Name} {agent.Description} {string.Join(' ', agent.Keywords)} {string.Join(' ', agent.Keywords)}";
}
