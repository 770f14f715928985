using Microsoft.Extensions.AI;

namespace AgentPlatform.Engine.Routing;

/// <summary>
/// The embedded default when no provider is configured: a deterministic hashed bag of stemmed words
/// and character 4-grams, L2-normalised. Texts that share words and word stems are close. It is
/// no language model, but it is stable across processes and replicas (FNV-1a, not string hashes),
/// costs microseconds, and needs no network.
/// </summary>
public sealed class LocalEmbeddingGenerator : IEmbeddingGenerator<string, Embedding<float>>
{
    public const int Dimensions = 1024;

    private static readonly HashSet<string> StopWords = new(StringComparer.Ordinal)
    {
        "a", "an", "the", "and", "or", "but", "of", "to", "in", "on", "for", "with", "at", "by", "from", "as", "is", "are",
        "was", "were", "be", "been", "it", "its", "this", "that", "these", "those", "i", "me", "my", "you", "your", "we",
        "our", "us", "please", "can", "could", "would", "should", "do", "does", "what", "how", "why", "which", "who",
        "some", "any", "all", "about", "into", "than", "then", "so", "if", "not", "no", "will", "just", "also", "give",
    };

    public Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values,
        EmbeddingGenerationOptions? options = null, CancellationToken cancellationToken = default) =>
        Task.FromResult(new GeneratedEmbeddings<Embedding<float>>(values.Select(v => new Embedding<float>(Embed(v)))));

    public static float[] Embed(string text)
    {
        var vector = new float[Dimensions];
        foreach (var word in Words(text))
        {
            var stem = Stem(word);
            vector[Bucket(stem)] += 1f;
            var padded = $"#{stem}#";
            for (var i = 0; i + 4 <= padded.Length; i++) vector[Bucket(padded.Substring(i, 4))] += 0.25f;
        }
        var norm = MathF.Sqrt(vector.Sum(v => v * v));
        if (norm > 0) for (var i = 0; i < vector.Length; i++) vector[i] /= norm;
        return vector;
    }

    public static IEnumerable<string> Words(string text)
    {
        var start = -1;
        for (var i = 0; i <= text.Length; i++)
        {
            var letter = i < text.Length && (char.IsLetterOrDigit(text[i]) || text[i] is '#' or '+');
            if (letter && start < 0) start = i;
            else if (!letter && start >= 0)
            {
                var word = text[start..i].ToLowerInvariant();
                start = -1;
                if (word.Length > 1 && !StopWords.Contains(word)) yield return word;
            }
        }
    }

    // A light suffix stripper: "refactoring", "refactored", "refactors" → "refactor".
    private static string Stem(string word)
    {
        foreach (var suffix in new[] { "ations", "ation", "ings", "ing", "ies", "ied", "ed", "es", "s", "ly" })
        {
            if (word.Length > suffix.Length + 3 && word.EndsWith(suffix, StringComparison.Ordinal))
                return suffix is "ies" or "ied" ? word[..^3] + "y" : word[..^suffix.Length];
        }
        return word;
    }

    private static int Bucket(string token)
    {
        var hash = 2166136261u;
        foreach (var c in token) hash = (hash ^ c) * 16777619u;
        return (int)(hash % Dimensions);
    }

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is null && serviceType.IsInstanceOfType(this) ? this : null;

    public void Dispose() { }
}
