using System.Collections.Concurrent;
using Microsoft.Extensions.AI;
using Microsoft.ML.Tokenizers;

namespace AgentPlatform.Engine.Conversations;

/// <summary>
/// Token counts with the model's own encoding (Microsoft.ML.Tokenizers: o200k_base for the gpt-4o/4.1/o-series family,
/// cl100k_base for gpt-4/3.5 and the embedding models; o200k_base for models it does not know), and the context
/// windows of the models it knows.
/// </summary>
public static class ContextWindow
{
    /// <summary>What the chat format adds per message (role and separators), as OpenAI's counting guide gives it.</summary>
    public const int PerMessageOverhead = 4;

    private static readonly Lazy<Tokenizer> O200k = new(() => TiktokenTokenizer.CreateForEncoding("o200k_base"));
    // Lazy values: GetOrAdd may run its factory once per concurrent caller, and a Worker starting on a backlog had its
    // twenty first tasks each load the same vocabulary (seconds of CPU, hundreds of MB).
    private static readonly ConcurrentDictionary<string, Lazy<Tokenizer>> ByModel = new(StringComparer.OrdinalIgnoreCase);

    public static Tokenizer TokenizerFor(string? model) =>
        string.IsNullOrEmpty(model) ? O200k.Value : ByModel.GetOrAdd(model, static m => new Lazy<Tokenizer>(() =>
        {
            try
            {
                return TiktokenTokenizer.CreateForModel(m);
            }
            catch (NotSupportedException)
            {
                return O200k.Value;
            }
        })).Value;

    public static int Count(Tokenizer tokenizer, string text) => tokenizer.CountTokens(text);

    public static int Count(Tokenizer tokenizer, ChatMessage message) => PerMessageOverhead + tokenizer.CountTokens(message.Text);

    public static int Count(Tokenizer tokenizer, IEnumerable<ChatMessage> messages)
    {
        var total = 0;
        foreach (var message in messages)
        {
            total += message.Role == ChatRole.System ? PerMessageOverhead + CountSystemPrompt(tokenizer, message.Text) : Count(tokenizer, message);
        }
        return total;
    }

    // System prompts are few and repeat on every run of their agent (often longer than the task): counted once each.
    // Bounded, as clients can send their own: a flood of distinct prompts costs a reset, not memory.
    private static readonly ConcurrentDictionary<(Tokenizer, string), int> SystemPrompts = new();

    private static int CountSystemPrompt(Tokenizer tokenizer, string text)
    {
        if (SystemPrompts.TryGetValue((tokenizer, text), out var count)) return count;
        if (SystemPrompts.Count >= 1_000) SystemPrompts.Clear();
        return SystemPrompts[(tokenizer, text)] = tokenizer.CountTokens(text);
    }

    /// <summary>The published context windows of common models; null when unknown.</summary>
    public static int? KnownWindow(string? model) => model?.ToLowerInvariant() switch
    {
        null or "" => null,
        var m when m.StartsWith("gpt-4.1", StringComparison.Ordinal) => 1_047_576,
        var m when m.StartsWith("gpt-4o", StringComparison.Ordinal) || m.StartsWith("gpt-4-turbo", StringComparison.Ordinal) => 128_000,
        var m when m.StartsWith("gpt-5", StringComparison.Ordinal) => 400_000,
        var m when m.StartsWith("o1", StringComparison.Ordinal) || m.StartsWith("o3", StringComparison.Ordinal) || m.StartsWith("o4", StringComparison.Ordinal) => 200_000,
        var m when m.StartsWith("gpt-4-32k", StringComparison.Ordinal) => 32_768,
        var m when m.StartsWith("gpt-4", StringComparison.Ordinal) => 8_192,
        var m when m.StartsWith("gpt-3.5", StringComparison.Ordinal) => 16_385,
        _ => null,
    };
}
