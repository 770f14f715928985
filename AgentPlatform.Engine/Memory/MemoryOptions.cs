using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;

namespace AgentPlatform.Engine.Memory;

/// <summary>Binds "Memory": long-term memory limits and how chats recall it.</summary>
public sealed class MemoryOptions
{
    public const string SectionName = "Memory";

    /// <summary>Whether chats recall memories at all (agents can also opt out one by one: <c>memory.recall</c>).</summary>
    public bool Recall { get; set; } = true;

    /// <summary>How many memories a chat message recalls at most.</summary>
    public int RecallLimit { get; set; } = 5;

    /// <summary>
    /// Least cosine similarity for a memory to be recalled into a chat; weaker matches are noise in the prompt. 0.3 let no
    /// irrelevant memory through on the labelled set (bench/memory-recall-set.json) with the local embedding; it suits
    /// OpenAI's text-embedding-3 models too, whose related texts score about 0.3 to 0.6.
    /// </summary>
    public double RecallMinScore { get; set; } = 0.3;

    /// <summary>How long a chat waits for its recall (embedding and search); past it the chat goes on without memories.</summary>
    public TimeSpan RecallTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Longest memory, in characters.</summary>
    public int MaxContentLength { get; set; } = 2000;

    /// <summary>Longest metadata object, in characters of JSON.</summary>
    public int MaxMetadataLength { get; set; } = 4000;

    /// <summary>Most memories one API key may keep (its users' included), in the current embedding space.</summary>
    public int MaxPerKey { get; set; } = 10_000;

    /// <summary>
    /// Start of the collection names (then the embedding space and dimension: memories_text-embedding-3-small_1536),
    /// so deployments sharing one Qdrant keep theirs apart.
    /// </summary>
    public string CollectionPrefix { get; set; } = "memories";
}

/// <summary>Stops start-up on a bad "Memory" setting, naming it.</summary>
public sealed partial class MemoryOptionsValidator : IValidateOptions<MemoryOptions>
{
    [GeneratedRegex("^[a-z0-9][a-z0-9_-]{0,63}$")]
    private static partial Regex Prefix();

    public ValidateOptionsResult Validate(string? name, MemoryOptions options)
    {
        const string section = MemoryOptions.SectionName;
        var errors = new List<string>();
        if (options.RecallLimit is < 1 or > 20) errors.Add($"{section}:RecallLimit must be between 1 and 20.");
        if (!(options.RecallMinScore is >= 0 and <= 1)) errors.Add($"{section}:RecallMinScore must be between 0 and 1 (a cosine similarity).");
        if (options.RecallTimeout <= TimeSpan.Zero || options.RecallTimeout > TimeSpan.FromMinutes(1))
            errors.Add($"{section}:RecallTimeout must be between 0 and 1 minute.");
        if (options.MaxContentLength is < 1 or > 100_000) errors.Add($"{section}:MaxContentLength must be between 1 and 100,000.");
        if (options.MaxMetadataLength is < 2 or > 64_000) errors.Add($"{section}:MaxMetadataLength must be between 2 and 64,000.");
        if (options.MaxPerKey is < 1 or > 10_000_000) errors.Add($"{section}:MaxPerKey must be between 1 and 10,000,000.");
        if (!Prefix().IsMatch(options.CollectionPrefix ?? ""))
            errors.Add($"{section}:CollectionPrefix must be 1-64 lower-case letters, digits, '_' or '-', starting with a letter or digit.");
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
