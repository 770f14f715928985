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
        string[]? allowedAgents, string[]? allowedTools, CancellationToken cancellationToken, int? rpmLimit = null, int? tpmLimit = null,
        string? alertWebhookUrl = null)
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
            RpmLimit = rpmLimit,
            TpmLimit = tpmLimit,
            AlertWebhookUrl = alertWebhookUrl,
            AllowedAgents = allowedAgents,
            AllowedTools = allowedTools,
            WebhookSecret = Webhooks.WebhookSignature.NewSecret(),
            CreatedAt = DateTimeOffset.UtcNow,
        };
        db.ApiKeys.Add(key);
        await db.SaveChangesAsync(cancellationToken);
        return (key, secret);
    }

    /// <summary>Postgres channel on which a revocation announces the revoked key's hash, when it commits.</summary>
    public const string RevocationChannel = "api_key_revoked";

    public Task<ApiKey?> FindActiveAsync(string secret, CancellationToken cancellationToken) => FindActiveByHashAsync(Hash(secret), cancellationToken);

    public Task<ApiKey?> FindActiveByHashAsync(string keyHash, CancellationToken cancellationToken) =>
        db.ApiKeys.AsNoTracking().FirstOrDefaultAsync(k => k.KeyHash == keyHash && k.RevokedAt == null, cancellationToken);

    public Task<List<ApiKey>> ListAsync(CancellationToken cancellationToken) =>
        db.ApiKeys.AsNoTracking().OrderBy(k => k.CreatedAt).ToListAsync(cancellationToken);

    /// <summary>
    /// Revokes a key and, in the same transaction, announces it on <see cref="RevocationChannel"/>: Postgres
    /// delivers the signal exactly when the revocation commits, so every instance's key cache drops the key
    /// at once, and no instance hears of a revocation that rolled back.
    /// </summary>
    /// <returns>The revoked key's hash; null when there was no active key with this id.</returns>
    public async Task<string?> RevokeAsync(Guid id, CancellationToken cancellationToken)
    {
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        var hash = await db.ApiKeys.Where(k => k.Id == id && k.RevokedAt == null).Select(k => k.KeyHash).FirstOrDefaultAsync(cancellationToken);
        if (hash is null) return null;
        var revoked = await db.ApiKeys.Where(k => k.Id == id && k.RevokedAt == null)
            .ExecuteUpdateAsync(s => s.SetProperty(k => k.RevokedAt, DateTimeOffset.UtcNow), cancellationToken);
        if (revoked == 0) return null; // revoked concurrently; that revocation announces it
        await db.Database.ExecuteSqlAsync($"SELECT pg_notify({RevocationChannel}, {hash})", cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return hash;
    }

    /// <summary>
    /// Changes an active key's own limits (null clears an override: the tier's applies) and, in the same transaction,
    /// announces the key on <see cref="RevocationChannel"/> so every instance reloads it at once.
    /// </summary>
    /// <returns>The updated key; null when there is no active key with this id.</returns>
    public async Task<ApiKey?> UpdateLimitsAsync(Guid id, Action<ApiKey> change, CancellationToken cancellationToken)
    {
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        var key = await db.ApiKeys.FirstOrDefaultAsync(k => k.Id == id && k.RevokedAt == null, cancellationToken);
        if (key is null) return null;
        change(key);
        await db.SaveChangesAsync(cancellationToken);
        await db.Database.ExecuteSqlAsync($"SELECT pg_notify({RevocationChannel}, {key.KeyHash})", cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return key;
    }

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
