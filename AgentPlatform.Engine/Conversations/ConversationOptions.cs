using System.ComponentModel.DataAnnotations;
using System.Text.RegularExpressions;

namespace AgentPlatform.Engine.Conversations;

/// <summary>Binds the "Conversations" section.</summary>
public sealed class ConversationOptions
{
    public const string SectionName = "Conversations";

    /// <summary>How long an idle session's history stays hot in Redis; every read or write starts it again.</summary>
    public TimeSpan HotTtl { get; set; } = TimeSpan.FromHours(24);

    /// <summary>The context window of a model the platform does not know and whose agent sets none.</summary>
    [Range(512, 10_000_000)]
    public int DefaultContextWindow { get; set; } = 16_384;

    /// <summary>Tokens kept free for the reply when the agent sets no max_output_tokens.</summary>
    [Range(16, 1_000_000)]
    public int DefaultReplyBudget { get; set; } = 1_024;

    /// <summary>The longest summary of older turns, in tokens (the summarizing call's own output limit).</summary>
    [Range(32, 100_000)]
    public int SummaryMaxTokens { get; set; } = 400;

    /// <summary>The most messages one session keeps; the oldest beyond it are no longer shown (the summary still covers them).</summary>
    [Range(2, 1_000_000)]
    public int MaxMessagesPerSession { get; set; } = 1_000;

    /// <summary>The agent whose model chain writes summaries (e.g. one on a cheap model); the turn's own agent when unset.</summary>
    [MaxLength(100)]
    public string? SummaryAgent { get; set; }

    [Required, MinLength(10)]
    public string SummaryPrompt { get; set; } =
        "Summarize the conversation below for an assistant that will continue it. Keep facts, names, numbers, decisions, " +
        "the user's preferences and open questions; drop pleasantries. Reply with the summary only, in at most 200 words.";
}

public static partial class ConversationRules
{
    public const int MaxSessionIdLength = 100;
    public const int TitleLength = 80;

    /// <summary>Letters, digits and . _ : - (client-chosen ids are fine, as long as they are plain).</summary>
    [GeneratedRegex("^[A-Za-z0-9._:-]{1,100}$")]
    public static partial Regex SessionIdPattern();

    public static string? SessionIdError(string? sessionId) =>
        sessionId is null || SessionIdPattern().IsMatch(sessionId)
            ? null
            : $"session_id must be 1 to {MaxSessionIdLength} letters, digits or . _ : - characters.";

    public static string NewSessionId() => Guid.CreateVersion7().ToString("N");

    public static string Title(string text)
    {
        var line = text.ReplaceLineEndings(" ").Trim();
        return line.Length <= TitleLength ? line : line[..TitleLength] + "…";
    }
}
