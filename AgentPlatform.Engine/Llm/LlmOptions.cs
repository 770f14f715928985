using System.ComponentModel.DataAnnotations;
using System.Data.Common;
using Microsoft.Extensions.Configuration;

namespace AgentPlatform.Engine.Llm;

/// <summary>
/// Binds the "Llm" section. The provider comes from <c>ConnectionStrings:openai</c>
/// (<c>Endpoint=…;Key=…;Model=…</c>, the format Aspire injects) or <c>OPENAI_API_KEY</c>;
/// with neither, the offline model answers.
/// </summary>
public sealed class LlmOptions
{
    public const string SectionName = "Llm";
    public const string OfflineModel = "offline";
    public const string DefaultEndpoint = "https://api.openai.com/v1";

    public string? Endpoint { get; set; }
    public string? Key { get; set; }

    /// <summary>Model used by agents that name none.</summary>
    public string DefaultModel { get; set; } = "gpt-4o-mini";

    /// <summary>Attempts after the first one for a transient provider failure (5xx, 429, timeout).</summary>
    [Range(0, 10)]
    public int MaxRetries { get; set; } = 3;

    /// <summary>First retry delay; later ones grow exponentially with jitter.</summary>
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Time limit of one provider call.</summary>
    public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Time limit of one model call with all its retries (the resilience handler's total timeout). The HttpClient's own
    /// 100-second timeout is off, so this and <see cref="AttemptTimeout"/> are the limits that hold.
    /// </summary>
    public TimeSpan TotalTimeout { get; set; } = TimeSpan.FromMinutes(3);

    /// <summary>More OpenAI-compatible providers by name; "default" is the connection string's.</summary>
    public Dictionary<string, ProviderOptions> Providers { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>How long a provider key rests after the provider answered 401 or 429 with it.</summary>
    public TimeSpan KeyRestPeriod { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Embedding model at the default provider (the router's embeddings); offline: a local embedding.</summary>
    public string EmbeddingModel { get; set; } = "text-embedding-3-small";

    /// <summary>Use the provider's embeddings for routing when a provider is configured (else the local embedding).</summary>
    public bool UseProviderEmbeddings { get; set; } = true;

    public CircuitBreakerOptions CircuitBreaker { get; set; } = new();

    /// <summary>Prices per 1K tokens by model id; models not listed cost nothing.</summary>
    public Dictionary<string, ModelPrice> Pricing { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    public bool IsOffline => string.IsNullOrWhiteSpace(Key) && string.IsNullOrWhiteSpace(Endpoint);

    /// <summary>The default provider from <c>ConnectionStrings:openai</c>, else <c>OPENAI_API_KEY</c>.</summary>
    public void ApplyProviderSettings(IConfiguration configuration)
    {
        ApplyConnectionString(configuration.GetConnectionString("openai"));
        if (string.IsNullOrWhiteSpace(Key)) Key = configuration["OPENAI_API_KEY"];
    }

    /// <summary>Fills Endpoint/Key/Model from an Aspire-style connection string.</summary>
    public void ApplyConnectionString(string? connectionString)
    {
        if (string.IsNullOrWhiteSpace(connectionString)) return;
        var parts = new DbConnectionStringBuilder { ConnectionString = connectionString };
        if (parts.TryGetValue("Endpoint", out var endpoint)) Endpoint = endpoint?.ToString();
        if (parts.TryGetValue("Key", out var key)) Key = key?.ToString();
        if (parts.TryGetValue("Model", out var model) && !string.IsNullOrWhiteSpace(model?.ToString()))
            DefaultModel = model.ToString()!;
    }

    public const string DefaultProvider = "default";

    /// <summary>Every provider by name, the connection string's as "default" (absent when offline).</summary>
    public IReadOnlyDictionary<string, ProviderOptions> AllProviders()
    {
        var all = new Dictionary<string, ProviderOptions>(Providers, StringComparer.OrdinalIgnoreCase);
        if (!IsOffline && !all.ContainsKey(DefaultProvider))
            all[DefaultProvider] = new ProviderOptions { Endpoint = Endpoint ?? DefaultEndpoint, Key = Key };
        return all;
    }

    public decimal CostOf(string model, long inputTokens, long outputTokens, decimal? inputPer1K = null, decimal? outputPer1K = null)
    {
        Pricing.TryGetValue(model, out var price);
        var input = inputPer1K ?? price?.InputPer1K ?? 0m;
        var output = outputPer1K ?? price?.OutputPer1K ?? 0m;
        return Math.Round((inputTokens * input + outputTokens * output) / 1000m, 8) / 1.000000000000000000000000000000000m;
    }
}

/// <summary>One OpenAI-compatible provider: an endpoint and one or more keys used round-robin.</summary>
public sealed class ProviderOptions
{
    public string? Endpoint { get; set; }
    public string? Key { get; set; }
    public string[] Keys { get; set; } = [];

    public string[] AllKeys => Keys.Concat(string.IsNullOrWhiteSpace(Key) ? [] : [Key]).Where(k => !string.IsNullOrWhiteSpace(k)).Distinct().ToArray();
}

/// <summary>Per (agent, provider, model) breaker: opens after FailureThreshold failures in a row, for BreakDuration.</summary>
public sealed class CircuitBreakerOptions
{
    [Range(1, 1000)]
    public int FailureThreshold { get; set; } = 5;

    /// <summary>The failures must fall within this window with no success among them.</summary>
    public TimeSpan SamplingDuration { get; set; } = TimeSpan.FromSeconds(60);

    public TimeSpan BreakDuration { get; set; } = TimeSpan.FromSeconds(60);
}

public sealed class ModelPrice
{
    public decimal InputPer1K { get; set; }
    public decimal OutputPer1K { get; set; }
}
