using System.ComponentModel.DataAnnotations;
using System.Data.Common;

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

    /// <summary>Prices per 1K tokens by model id; models not listed cost nothing.</summary>
    public Dictionary<string, ModelPrice> Pricing { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    public bool IsOffline => string.IsNullOrWhiteSpace(Key) && string.IsNullOrWhiteSpace(Endpoint);

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

    public decimal CostOf(string model, long inputTokens, long outputTokens) =>
        Pricing.TryGetValue(model, out var price)
            ? Math.Round((inputTokens * price.InputPer1K + outputTokens * price.OutputPer1K) / 1000m, 8)
            : 0m;
}

public sealed class ModelPrice
{
    public decimal InputPer1K { get; set; }
    public decimal OutputPer1K { get; set; }
}
