using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;

namespace AgentPlatform.Engine.Admission;

/// <summary>Binds "PromptInjection": case-insensitive regular expressions that refuse a prompt.</summary>
public sealed class PromptInjectionOptions
{
    public const string SectionName = "PromptInjection";

    public bool Enabled { get; set; } = true;
    public string[] Patterns { get; set; } = [];
}

/// <summary>
/// Refuses prompts that match a configured injection pattern (422 at the Api). The patterns run on .NET's non-backtracking
/// engine: matching takes time linear in the prompt's length whatever the pattern, so no input can make a check slow. It
/// replaced a 100 ms match timeout that counted as a match: under CPU load ordinary prompts timed out and were refused.
/// </summary>
public sealed class PromptInjectionDetector
{
    private readonly (string Source, Regex Regex)[] _patterns;

    public PromptInjectionDetector(IOptions<PromptInjectionOptions> options)
    {
        _patterns = options.Value.Enabled
            ? options.Value.Patterns.Select(p => (p, Compile(p))).ToArray()
            : [];
    }

    /// <summary>The first pattern the text matches, or null when the text is clean.</summary>
    public string? Detect(string? text)
    {
        if (string.IsNullOrEmpty(text)) return null;
        foreach (var (source, regex) in _patterns)
            if (regex.IsMatch(text)) return source;
        return null;
    }

    internal static Regex Compile(string pattern) =>
        new(pattern, RegexOptions.IgnoreCase | RegexOptions.Multiline | RegexOptions.CultureInvariant | RegexOptions.NonBacktracking);
}

/// <summary>Stops start-up with the index of a pattern that is not a valid regular expression.</summary>
public sealed class PromptInjectionOptionsValidator : IValidateOptions<PromptInjectionOptions>
{
    public ValidateOptionsResult Validate(string? name, PromptInjectionOptions options)
    {
        var errors = new List<string>();
        for (var i = 0; i < options.Patterns.Length; i++)
        {
            try
            {
                PromptInjectionDetector.Compile(options.Patterns[i]);
            }
            catch (ArgumentException e)
            {
                errors.Add($"{PromptInjectionOptions.SectionName}:Patterns:{i} is not a valid regular expression: {e.Message}");
            }
            catch (NotSupportedException e)
            {
                errors.Add($"{PromptInjectionOptions.SectionName}:Patterns:{i} needs backtracking (lookarounds, backreferences, atomic " +
                           $"groups), which the linear-time engine the patterns run on does not have: {e.Message}");
            }
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
