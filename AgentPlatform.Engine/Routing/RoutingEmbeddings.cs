using AgentPlatform.Engine.Billing;
using AgentPlatform.Engine.Llm;
using AgentPlatform.Engine.Telemetry;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using Polly.CircuitBreaker;
using Polly.Registry;

namespace AgentPlatform.Engine.Routing;

/// <summary>Vectors from one embedding space: the provider's model, or the local embedding.</summary>
public sealed record EmbeddedTexts(string Space, IReadOnlyList<float[]> Vectors);

/// <summary>
/// The router's embeddings: the provider's (when one is configured) behind a time limit and a circuit breaker
/// (Polly, pipeline <see cref="PipelineName"/>), falling back to the local embedding when the provider fails, is slow
/// or its breaker is open — a routing decision never fails on an embedding call. Provider tokens and cost are metered.
/// </summary>
public sealed class RoutingEmbeddings
{
    public const string PipelineName = "router-embeddings";

    /// <summary>
    /// The pipeline of <see cref="EmbedInPreferredSpaceAsync"/>: the same limits, its own breaker, so a burst of memory
    /// traffic does not dilute the failure ratio the router's breaker watches (nor the other way round).
    /// </summary>
    public const string StoredPipelineName = "stored-embeddings";
    public const string LocalSpace = "local";
    public const string MiniLmSpace = MiniLmEmbeddingGenerator.ModelName;

    private readonly IEmbeddingGenerator<string, Embedding<float>>? _provider;
    private readonly ResiliencePipelineProvider<string>? _pipelines;
    private readonly IOptions<LlmOptions> _llm;
    private readonly UsageLedger? _ledger;
    private readonly ILogger _logger;
    private readonly MiniLmEmbeddingGenerator _miniLm;

    public RoutingEmbeddings(ChatClientPool pool, ResiliencePipelineProvider<string> pipelines, IOptions<LlmOptions> llm,
        UsageLedger ledger, MiniLmEmbeddingGenerator miniLm, ILogger<RoutingEmbeddings> logger)
        : this(pool.CreateEmbeddingGenerator(), pipelines, llm, ledger, miniLm, logger)
    {
    }

    private RoutingEmbeddings(IEmbeddingGenerator<string, Embedding<float>>? provider, ResiliencePipelineProvider<string>? pipelines,
        IOptions<LlmOptions> llm, UsageLedger? ledger, MiniLmEmbeddingGenerator miniLm, ILogger logger)
    {
        _provider = provider;
        _pipelines = pipelines;
        _llm = llm;
        _ledger = ledger;
        _miniLm = miniLm;
        _logger = logger;
    }

    /// <summary>Only the local embeddings (benchmarks, tests of the router itself); pass the process's MiniLM to share its model.</summary>
    public static RoutingEmbeddings LocalOnly(MiniLmEmbeddingGenerator? miniLm = null) =>
        new(null, null, Options.Create(new LlmOptions()), null, miniLm ?? new MiniLmEmbeddingGenerator(),
            Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);

    /// <summary>Whether the provider's embeddings can be asked at all (a provider is configured, and Llm:UseProviderEmbeddings).</summary>
    public bool HasProvider => _provider is not null;

    /// <summary>Embeds in a local mode: the hashed embedding, or MiniLM (the texts in one batch).</summary>
    public EmbeddedTexts EmbedLocally(IReadOnlyList<string> texts, RouterEmbedding mode) => mode == RouterEmbedding.MiniLM
        ? new EmbeddedTexts(MiniLmSpace, _miniLm.Embed(texts))
        : EmbedLocally(texts);

    /// <summary>The local mode that answers for <paramref name="mode"/>: itself, or for the provider mode its fallback.</summary>
    public static RouterEmbedding LocalMode(RouterEmbedding mode, RouterEmbedding fallback) =>
        mode != RouterEmbedding.Provider ? mode : fallback == RouterEmbedding.Provider ? RouterEmbedding.Hashed : fallback;

    public static string SpaceOf(RouterEmbedding local) => local == RouterEmbedding.MiniLM ? MiniLmSpace : LocalSpace;

    /// <summary>
    /// The provider's embeddings behind the router's breaker and time limit (metered), or null when the provider failed, was
    /// too slow or its breaker is open: the caller embeds locally instead, so routing never fails on an embedding.
    /// </summary>
    public async Task<EmbeddedTexts?> TryProviderAsync(IReadOnlyList<string> texts, CancellationToken cancellationToken)
    {
        if (_provider is null) return null;
        try
        {
            return await EmbedAtProviderAsync(PipelineName, texts, cancellationToken);
        }
        catch (BrokenCircuitException)
        {
            // Open breaker: the provider is not asked; the local embedding answers.
        }
        catch (Exception e) when (IsProviderFailure(e, cancellationToken))
        {
            _logger.LogWarning("Routing embeddings from the provider failed ({Reason}); using the local embedding", ProviderFailures.Describe(e));
        }
        return null;
    }

    /// <summary>The space <see cref="EmbedAsync"/> answers in when all goes well.</summary>
    public string PreferredSpace => _provider is null ? LocalSpace : _llm.Value.EmbeddingModel;

    /// <summary>Embeds in the provider's space when it can, else locally; <see cref="EmbeddedTexts.Space"/> says which.</summary>
    public async Task<EmbeddedTexts> EmbedAsync(IReadOnlyList<string> texts, CancellationToken cancellationToken) =>
        _provider is not null && await TryProviderAsync(texts, cancellationToken) is { } embedded ? embedded : EmbedLocally(texts);

    /// <summary>
    /// Embeds in <see cref="PreferredSpace"/> or not at all, for vectors that are stored and compared later (long-term
    /// memory): a fallback to the local embedding would put vectors of two spaces side by side, and their scores mean nothing.
    /// </summary>
    /// <exception cref="EmbeddingUnavailableException">The provider failed, was too slow, or its breaker is open.</exception>
    public async Task<EmbeddedTexts> EmbedInPreferredSpaceAsync(IReadOnlyList<string> texts, CancellationToken cancellationToken)
    {
        if (_provider is null) return EmbedLocally(texts);
        try
        {
            return await EmbedAtProviderAsync(StoredPipelineName, texts, cancellationToken);
        }
        catch (BrokenCircuitException e)
        {
            throw new EmbeddingUnavailableException(PreferredSpace, "Its circuit breaker is open after repeated failures; retry shortly.", e);
        }
        catch (Exception e) when (IsProviderFailure(e, cancellationToken))
        {
            throw new EmbeddingUnavailableException(PreferredSpace, ProviderFailures.Describe(e), e);
        }
    }

    private async Task<EmbeddedTexts> EmbedAtProviderAsync(string pipelineName, IReadOnlyList<string> texts, CancellationToken cancellationToken)
    {
        var pipeline = _pipelines!.GetPipeline(pipelineName);
        var generated = await pipeline.ExecuteAsync(
            async token => await _provider!.GenerateAsync(texts, cancellationToken: token), cancellationToken);
        Meter(generated);
        return new EmbeddedTexts(_llm.Value.EmbeddingModel, generated.Select(e => e.Vector.ToArray()).ToList());
    }

    private static bool IsProviderFailure(Exception e, CancellationToken cancellationToken) =>
        ProviderFailures.IsProviderFailure(e, cancellationToken) || e is Polly.Timeout.TimeoutRejectedException;

    public EmbeddedTexts EmbedLocally(IReadOnlyList<string> texts) =>
        new(LocalSpace, texts.Select(LocalEmbeddingGenerator.Embed).ToList());

    private void Meter(GeneratedEmbeddings<Embedding<float>> generated) =>
        Meter(_llm.Value, _llm.Value.EmbeddingModel, generated.Usage?.InputTokenCount ?? 0, _ledger);

    /// <summary>
    /// Records an embedding call's tokens and cost in the metrics and, when a <paramref name="ledger"/> is given, as one
    /// ledger entry for the <see cref="UsageScope"/>'s key (the one place embeddings are priced); returns the cost.
    /// </summary>
    public static decimal Meter(LlmOptions llm, string model, long tokens, UsageLedger? ledger)
    {
        var cost = tokens <= 0 ? 0m : llm.CostOf(model, tokens, 0);
        ledger?.Record(UsageKinds.Embedding, null, model, Math.Max(tokens, 0), 0, cost);
        if (tokens <= 0) return 0m;
        PlatformTelemetry.LlmTokens.Add(tokens, new("model", model), new("token_type", "input"));
        if (cost > 0) PlatformTelemetry.CostUsd.Add((double)cost, new KeyValuePair<string, object?>("model", model));
        return cost;
    }

    /// <summary>The pipeline: a time limit per call, and a breaker that opens after repeated failures.</summary>
    public static void Configure(ResiliencePipelineBuilder pipeline, RouterOptions router) => pipeline
        .AddCircuitBreaker(new CircuitBreakerStrategyOptions
        {
            FailureRatio = 0.5,
            MinimumThroughput = 4,
            SamplingDuration = TimeSpan.FromSeconds(30),
            BreakDuration = router.EmbeddingBreakDuration,
            // A failure or a time-out counts; the caller's own cancellation does not.
            ShouldHandle = new PredicateBuilder().Handle<Exception>(e => e is not OperationCanceledException),
        })
        .AddTimeout(router.EmbeddingTimeout);
}

/// <summary>The embedding provider cannot embed now. The message is safe to show (see <see cref="ProviderFailures.Describe"/>).</summary>
public sealed class EmbeddingUnavailableException(string space, string reason, Exception? inner = null)
    : Exception($"The embedding model '{space}' is unavailable. {reason}", inner)
{
    public string Space { get; } = space;
}
