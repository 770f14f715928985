namespace AgentPlatform.Engine.Admission;

/// <summary>A client's API key. Only the SHA-256 hash of the secret is stored.</summary>
public sealed class ApiKey
{
    public Guid Id { get; set; }
    public string Name { get; set; } = "";
    public string Tier { get; set; } = "free";
    public string KeyHash { get; set; } = "";
    /// <summary>The first characters of the key, enough for a person to recognise it in a list.</summary>
    public string KeyPrefix { get; set; } = "";
    public decimal? DailyBudgetUsd { get; set; }
    /// <summary>Requests per minute, overriding the tier's; null means the tier's.</summary>
    public int? RpmLimit { get; set; }
    /// <summary>Tokens per minute, overriding the tier's; null means the tier's.</summary>
    public int? TpmLimit { get; set; }
    /// <summary>Where budget alerts (80 % and 100 % of the daily budget) are POSTed, signed with <see cref="WebhookSecret"/>.</summary>
    public string? AlertWebhookUrl { get; set; }
    public string[]? AllowedAgents { get; set; }
    public string[]? AllowedTools { get; set; }
    /// <summary>
    /// Signs this key's webhook deliveries (HMAC-SHA256). Kept readable, unlike the key itself, because
    /// the platform must sign with it; shown to the client once, when the key is created.
    /// </summary>
    public string? WebhookSecret { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? RevokedAt { get; set; }
}
