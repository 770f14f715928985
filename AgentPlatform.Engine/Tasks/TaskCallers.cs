using AgentPlatform.Engine.Admission;
using AgentPlatform.Engine.Infrastructure;
using AgentPlatform.Engine.Tools;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace AgentPlatform.Engine.Tasks;

/// <summary>
/// Who a stored task runs for (its key's tools and limits, or null for a revoked key), by key id, kept for
/// <see cref="QueueOptions.CallerCacheDuration"/>: a Worker draining a key's backlog asked Postgres once per task.
/// A revocation or a change of limits is announced on <see cref="ApiKeyStore.RevocationChannel"/> when it commits, and
/// drops every cached key (they are rare; the signal names a key's hash, not its id). As with the Api's key cache, entries
/// are trusted only while the listener is connected: with the feed down a revocation could be missed, so every task asks
/// Postgres until it is back, and the cache is dropped on every (re)connection.
/// </summary>
public sealed class TaskCallers(NpgsqlDataSource dataSource, IOptions<QueueOptions> options, ILogger<TaskCallers> logger)
    : BackgroundService
{
    private const int MaxKeys = 10_000;
    private readonly MemoryCache _callers = new(new MemoryCacheOptions { SizeLimit = MaxKeys });
    private readonly ListenedInvalidation _revocations = new();

    private bool Enabled => _revocations.Listening && options.Value.CallerCacheDuration > TimeSpan.Zero;

    /// <summary>Whether <paramref name="keyId"/>'s caller is cached and trusted now.</summary>
    public bool Caches(Guid keyId) => Enabled && _callers.TryGetValue(keyId, out _);

    /// <summary>The caller of <paramref name="keyId"/>'s tasks from the cache, or from <paramref name="load"/> (then cached).</summary>
    public async Task<ToolCaller?> FindAsync(Guid keyId, Func<Task<ToolCaller?>> load)
    {
        if (Enabled && _callers.TryGetValue(keyId, out ToolCaller? cached)) return cached;
        var generation = _revocations.Generation;
        var caller = await load();
        if (Enabled && _revocations.MayStore(generation))
        {
            _callers.Set(keyId, caller, new MemoryCacheEntryOptions
            {
                AbsoluteExpirationRelativeToNow = options.Value.CallerCacheDuration,
                Size = 1,
            });
        }
        return caller;
    }

    // A signal names a key's hash, not its id, and revocations are rare: each drops every cached key.
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        _revocations.ListenAsync(dataSource, ApiKeyStore.RevocationChannel, _ => _callers.Clear(), _callers.Clear, logger, stoppingToken);

    public override void Dispose()
    {
        _callers.Dispose();
        base.Dispose();
    }
}
