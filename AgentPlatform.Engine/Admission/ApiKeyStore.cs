using System.Security.Cryptography;
using System.Text;
using AgentPlatform.Engine.Data;
using Microsoft.EntityFrameworkCore;

namespace AgentPlatform.Engine.Admission;

/// <summary>Creates, finds and revokes client keys. The secret is shown once; only its hash is kept.</summary>
public sealed class ApiKeyStore(AgentDbContext db)
{
    private const string Prefix = "ap_";

    public async Task<(ApiKey Key, string Secret)> CreateAsync(string name, string tier, decimal? dailyBudgetUsd,
        string[]? allowedAgents, string[]? allowedTools, CancellationToken cancellationToken)
    {
        var secret = Prefix + Base64UrlEncode(RandomNumberGenerator.GetBytes(32));
        var key = new ApiKey
        {
            Id = Guid.CreateVersion7(),
            Name = name,
            Tier = tier,
            KeyHash = Hash(secret),
            KeyPrefix = secret[..10],
            DailyBudgetUsd = dailyBudgetUsd,
            AllowedAgents = allowedAgents,
            AllowedTools = allowedTools,
            WebhookSecret = Webhooks.WebhookSignature.NewSecret(),
            CreatedAt = DateTimeOffset.UtcNow,
        };
        db.ApiKeys.Add(key);
        await db.SaveChangesAsync(cancellationToken);
        return (key, secret);
    }

    public Task<ApiKey?> FindActiveAsync(string secret, CancellationToken cancellationToken)
    {
        var hash = Hash(secret);
        return db.ApiKeys.AsNoTracking().FirstOrDefaultAsync(k => k.KeyHash == hash && k.RevokedAt == null, cancellationToken);
    }

    public Task<List<ApiKey>> ListAsync(CancellationToken cancellationToken) =>
        db.ApiKeys.AsNoTracking().OrderBy(k => k.CreatedAt).ToListAsync(cancellationToken);

    public async Task<bool> RevokeAsync(Guid id, CancellationToken cancellationToken) =>
        await db.ApiKeys.Where(k => k.Id == id && k.RevokedAt == null)
            .ExecuteUpdateAsync(s => s.SetProperty(k => k.RevokedAt, DateTimeOffset.UtcNow), cancellationToken) == 1;

    /// <summary>A new webhook secret for an active key (the old one stops verifying at once); null when there is no such key.</summary>
    public async Task<string?> RotateWebhookSecretAsync(Guid id, CancellationToken cancellationToken)
    {
        var secret = Webhooks.WebhookSignature.NewSecret();
        var updated = await db.ApiKeys.Where(k => k.Id == id && k.RevokedAt == null)
            .ExecuteUpdateAsync(s => s.SetProperty(k => k.WebhookSecret, secret), cancellationToken);
        return updated == 1 ? secret : null;
    }

    // Keys carry 256 random bits, so a fast hash is enough; a slow password hash would only cost latency.
    public static string Hash(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));

    private static string Base64UrlEncode(byte[] bytes) =>
        Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
