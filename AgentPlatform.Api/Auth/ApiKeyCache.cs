using AgentPlatform.Engine.Admission;
using AgentPlatform.Engine.Infrastructure;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using Npgsql;

namespace AgentPlatform.Api.Auth;

/// <summary>
/// This instance's key lookups, by key hash, kept for <see cref="AuthOptions.KeyCacheDuration"/>. A revocation
/// reaches every instance over Postgres LISTEN/NOTIFY (<see cref="ApiKeyStore.RevocationChannel"/>, sent when the
/// revocation commits) and evicts the key at once. Postgres rather than Redis pub/sub: the revocation is a Postgres
/// write, so the signal commits with it and is never sent for a revocation that rolled back.
/// Cached keys are trusted only while the listener is connected: with the feed down a revocation could be
/// missed, so lookups go to Postgres until it is back, and the whole cache is dropped on every (re)connection.
/// </summary>
public sealed class ApiKeyCache : BackgroundService
{
    private readonly IOptions<AuthOptions> _options;
    private readonly IServiceScopeFactory _scopes;
    private readonly NpgsqlDataSource _dataSource;
    private readonly ILogger<ApiKeyCache> _logger;
    // Two caches, each bounded: a flood of made-up keys fills only the second and never evicts real keys.
    private readonly MemoryCache _known;
    private readonly MemoryCache _unknown;
    private readonly ListenedInvalidation _revocations = new();

    public ApiKeyCache(IOptions<AuthOptions> options, IServiceScopeFactory scopes, NpgsqlDataSource dataSource, ILogger<ApiKeyCache> logger)
    {
        _options = options;
        _scopes = scopes;
        _dataSource = dataSource;
        _logger = logger;
        _known = new MemoryCache(new MemoryCacheOptions { SizeLimit = options.Value.KeyCacheSize });
        _unknown = new MemoryCache(new MemoryCacheOptions { SizeLimit = options.Value.UnknownKeyCacheSize });
    }

    private bool Enabled => _revocations.Listening && _options.Value.KeyCacheDuration > TimeSpan.Zero;

    /// <summary>How many keys (known, unknown) are cached now.</summary>
    public (long Known, long Unknown) Count => (_known.Count, _unknown.Count);

    /// <summary>A key this instance has recently found active, without asking Postgres (null: not cached).</summary>
    public ApiKey? FindCached(string keyHash) => Enabled && _known.TryGetValue(keyHash, out ApiKey? key) ? key : null;

    /// <summary>The active key with this hash, from the cache or Postgres; null when there is none.</summary>
    public async Task<ApiKey?> FindAsync(string keyHash, CancellationToken cancellationToken)
    {
        if (FindCached(keyHash) is { } known) return known;
        if (Enabled && _unknown.TryGetValue(keyHash, out _)) return null;

        var generation = _revocations.Generation;
        ApiKey? key;
        await using (var scope = _scopes.CreateAsyncScope())
        {
            key = await scope.ServiceProvider.GetRequiredService<ApiKeyStore>().FindActiveByHashAsync(keyHash, cancellationToken);
        }
        if (Enabled && _revocations.MayStore(generation))
        {
            var entry = new MemoryCacheEntryOptions { AbsoluteExpirationRelativeToNow = _options.Value.KeyCacheDuration, Size = 1 };
            if (key is null) _unknown.Set(keyHash, true, entry);
            else _known.Set(keyHash, key, entry);
        }
        return key;
    }

    /// <summary>Drops one key (a revocation); the other instances hear of it from the revocation's signal.</summary>
    public void Evict(string keyHash)
    {
        _revocations.Changed();
        _known.Remove(keyHash);
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        _revocations.ListenAsync(_dataSource, ApiKeyStore.RevocationChannel, keyHash => _known.Remove(keyHash), () =>
        {
            _known.Clear();
            _unknown.Clear();
        }, _logger, stoppingToken);

    public override void Dispose()
    {
        _known.Dispose();
        _unknown.Dispose();
        base.Dispose();
    }
}
