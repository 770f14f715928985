using AgentPlatform.Engine.Billing;
using AgentPlatform.Engine.Conversations;
using AgentPlatform.Engine.Routing;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Options;

namespace AgentPlatform.Engine.Llm;

/// <summary>Vectors a client asked for, in the space of <paramref name="Model"/>, with what they cost.</summary>
public sealed record ClientEmbeddingResult(string Model, IReadOnlyList<float[]> Vectors, long InputTokens, decimal CostUsd);

/// <summary>
/// Embeddings a client asks for (the OpenAI-compatible /v1/embeddings): the configured embedding model at the default
/// provider, or the local embedding when no provider serves embeddings. Unlike the router's embeddings there is no
/// fallback from one to the other: vectors of two spaces cannot be compared, so a provider failure is the client's error
/// to see. The provider's HttpClient retries transient failures; tokens and cost are metered like chat calls (metrics and
/// the usage ledger, for the key of the request's <see cref="UsageScope"/>).
/// </summary>
public sealed class ClientEmbeddings(ChatClientPool pool, IOptions<LlmOptions> llm, UsageLedger ledger)
{
    private readonly Lazy<IEmbeddingGenerator<string, Embedding<float>>?> _provider = new(pool.CreateEmbeddingGenerator);

    /// <summary>The model the provider embeds with, or <see cref="RoutingEmbeddings.LocalSpace"/> when there is none.</summary>
    public string Model => _provider.Value is null ? RoutingEmbeddings.LocalSpace : llm.Value.EmbeddingModel;

    /// <summary>The names a client may ask for: the configured embedding model, and "local" (always served here).</summary>
    public IReadOnlyList<string> Names => [.. new[] { llm.Value.EmbeddingModel, RoutingEmbeddings.LocalSpace }.Distinct(StringComparer.OrdinalIgnoreCase)];

    /// <summary>Length of the local embedding's vectors; a provider's depend on its model.</summary>
    public static int LocalDimensions => LocalEmbeddingGenerator.Dimensions;

    /// <param name="local">The client asked for "local": embedded here even when a provider is configured.</param>
    /// <param name="dimensions">Shorter vectors, when the provider's model supports them.</param>
    public async Task<ClientEmbeddingResult> EmbedAsync(IReadOnlyList<string> texts, bool local, int? dimensions,
        CancellationToken cancellationToken)
    {
        if (local || _provider.Value is not { } provider)
        {
            // No provider counted the tokens; the embedding models' tokenizer does, so usage means the same either way.
            var tokenizer = ContextWindow.TokenizerFor(llm.Value.EmbeddingModel);
            return new ClientEmbeddingResult(RoutingEmbeddings.LocalSpace, texts.Select(LocalEmbeddingGenerator.Embed).ToList(),
                texts.Sum(t => (long)ContextWindow.Count(tokenizer, t)), 0m);
        }

        var model = llm.Value.EmbeddingModel;
        var generated = await provider.GenerateAsync(texts, new EmbeddingGenerationOptions { Dimensions = dimensions }, cancellationToken);
        var tokens = generated.Usage?.InputTokenCount ?? 0;
        var cost = RoutingEmbeddings.Meter(llm.Value, model, tokens, ledger);
        return new ClientEmbeddingResult(model, generated.Select(e => e.Vector.ToArray()).ToList(), tokens, cost);
    }
}
