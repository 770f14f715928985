using System.Text.RegularExpressions;
using AgentPlatform.Engine.Llm;

namespace AgentPlatform.Engine.Agents;

/// <summary>
/// The rules a definition must meet beyond its attributes, with field-level messages keyed by the
/// JSON field path (so the admin API can answer 400 naming the field, and start-up can name the setting).
/// </summary>
public static partial class AgentDefinitionRules
{
    [GeneratedRegex("^[a-z0-9][a-z0-9_-]{0,63}$")]
    private static partial Regex AgentName();

    [GeneratedRegex(@"^[a-zA-Z0-9_-]{1,64}\*?$|^\*$")]
    private static partial Regex ToolPattern();

    // Each example is one embedding per registry change and one comparison per routed task: a bounded few keep both cheap.
    public const int MaxExamples = 30;
    public const int MaxExampleLength = 500;

    public static Dictionary<string, string[]> Check(string name, AgentDefinition agent, Func<string, bool> providerExists)
    {
        var errors = new Dictionary<string, List<string>>();
        void Add(string field, string message) => (errors.TryGetValue(field, out var list) ? list : errors[field] = []).Add(message);

        if (agent.Memory is null) Add("memory", "memory must be an object when given, such as {\"recall\": false}.");
        if (agent.Cache is null) Add("cache", "cache must be an object when given, such as {\"ttl_seconds\": 600}.");
        if (agent.Examples is null) Add("examples", "examples must be an array of tasks when given, such as [\"Convert 72 °F to Celsius\"].");
        if (agent.Keywords is null || agent.Tools is null || agent.Models is null || agent.Examples is null)
        {
            if (agent.Keywords is null || agent.Tools is null || agent.Models is null) Add("body", "keywords, tools and models must be arrays when given.");
            return errors.ToDictionary(e => e.Key, e => e.Value.ToArray());
        }
        if (!AgentName().IsMatch(name) || name == AgentRegistry.Auto)
            Add("name", "An agent name is 1-64 lower-case letters, digits, '-' or '_', starting with a letter or digit, and not 'auto'.");
        if (string.IsNullOrWhiteSpace(agent.Description)) Add("description", "The description is required: the router matches tasks against it.");
        else if (agent.Description.Length > 2000) Add("description", "The description is at most 2,000 characters.");
        if (string.IsNullOrWhiteSpace(agent.SystemPrompt)) Add("system_prompt", "The system prompt is required.");
        else if (agent.SystemPrompt.Length > 20_000) Add("system_prompt", "The system prompt is at most 20,000 characters.");
        if (agent.Model is { Length: > 200 }) Add("model", "The model is at most 200 characters.");
        if (agent.Keywords.Length > 50) Add("keywords", "At most 50 keywords.");
        for (var i = 0; i < agent.Keywords.Length; i++)
            if (string.IsNullOrWhiteSpace(agent.Keywords[i]) || agent.Keywords[i].Length > 100) Add($"keywords[{i}]", "A keyword is 1-100 characters.");
        if (agent.Examples.Length > MaxExamples) Add("examples", $"At most {MaxExamples} examples.");
        for (var i = 0; i < agent.Examples.Length; i++)
            if (string.IsNullOrWhiteSpace(agent.Examples[i]) || agent.Examples[i].Length > MaxExampleLength)
                Add($"examples[{i}]", $"An example is a task of 1-{MaxExampleLength} characters.");
        if (agent.Models.Count > 10) Add("models", "At most 10 models in a chain.");
        if (agent.Models.Any(m => m is null)) Add("models", "A model entry cannot be null.");
        for (var i = 0; i < agent.Models.Count; i++)
        {
            var option = agent.Models[i];
            if (string.IsNullOrWhiteSpace(option.Model) || option.Model.Length > 200) Add($"models[{i}].model", "The model is required (at most 200 characters).");
            if (!providerExists(option.Provider)) Add($"models[{i}].provider", $"Unknown provider '{option.Provider}'. Configure it under Llm:Providers.");
            if (option.CostTier is < 1 or > 5) Add($"models[{i}].cost_tier", "The cost tier is 1 (cheapest) to 5.");
            if (option.InputPer1K < 0) Add($"models[{i}].input_per_1k", "A price cannot be negative.");
            if (option.OutputPer1K < 0) Add($"models[{i}].output_per_1k", "A price cannot be negative.");
        }
        if (agent.Tools.Length > 100) Add("tools", "At most 100 tool names.");
        for (var i = 0; i < agent.Tools.Length; i++)
            if (!ToolPattern().IsMatch(agent.Tools[i] ?? "")) Add($"tools[{i}]", "A tool name is 1-64 letters, digits, '-' or '_', optionally ending in '*'.");
        if (agent.Temperature is < 0 or > 2) Add("temperature", "The temperature is 0 to 2.");
        if (agent.MaxOutputTokens is < 1 or > 1_000_000) Add("max_output_tokens", "max_output_tokens is 1 to 1,000,000.");
        if (agent.DailyBudgetUsd is < 0 or > 1_000_000) Add("daily_budget_usd", "daily_budget_usd is 0 to 1,000,000.");
        if (agent.ContextWindowTokens is < 256 or > 10_000_000) Add("context_window_tokens", "context_window_tokens is 256 to 10,000,000.");
        if (agent.TimeoutSeconds is < 1 or > 3600) Add("timeout_seconds", "timeout_seconds is 1 to 3600.");
        if (agent.Cache?.TtlSeconds is < 1 or > AgentCacheOptions.MaxTtlSeconds)
            Add("cache.ttl_seconds", $"cache.ttl_seconds is 1 to {AgentCacheOptions.MaxTtlSeconds:N0} (30 days).");
        if (agent.Cache?.SemanticThreshold is { } threshold && !(threshold is >= AgentCacheOptions.MinSemanticThreshold and <= 1))
            Add("cache.semantic_threshold", $"cache.semantic_threshold is a cosine similarity from {AgentCacheOptions.MinSemanticThreshold} to 1.");
        return errors.ToDictionary(e => e.Key, e => e.Value.ToArray());
    }

    /// <summary>Whether a provider name is usable: configured, or "default" (which may be the offline model).</summary>
    public static Func<string, bool> ProviderCheck(LlmOptions llm) => provider =>
        string.Equals(provider, LlmOptions.DefaultProvider, StringComparison.OrdinalIgnoreCase) || llm.AllProviders().ContainsKey(provider);
}
