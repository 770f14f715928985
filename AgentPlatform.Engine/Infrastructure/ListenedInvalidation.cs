using Microsoft.Extensions.Logging;
using Npgsql;

namespace AgentPlatform.Engine.Infrastructure;

/// <summary>
/// Keeps an in-process cache honest when other processes change what it holds and say so on a Postgres channel
/// (<see cref="PostgresChannel"/>): entries are trusted only while the listener is connected (with the feed down a change
/// could be missed), the cache is dropped on every (re)connection and disconnection, and a value read before a change's
/// signal arrived is not stored (a generation bumped by every change). Shared by the Api's key cache and the Worker's
/// caller cache, which apply it to revocations.
/// </summary>
public sealed class ListenedInvalidation
{
    private long _generation;
    private volatile bool _listening;

    /// <summary>Whether cached entries may be trusted now.</summary>
    public bool Listening => _listening;

    /// <summary>Taken before reading a value to cache; <see cref="MayStore"/> tells afterwards whether it may be stored.</summary>
    public long Generation => Interlocked.Read(ref _generation);

    /// <summary>Still listening, and nothing changed since <paramref name="generation"/> was taken.</summary>
    public bool MayStore(long generation) => _listening && Interlocked.Read(ref _generation) == generation;

    /// <summary>Marks a change: a value read before it is not stored. Call it before removing what changed.</summary>
    public void Changed() => Interlocked.Increment(ref _generation);

    /// <summary>
    /// Listens until <paramref name="stoppingToken"/>: <paramref name="onSignal"/> for each signal (after
    /// <see cref="Changed"/>), <paramref name="clear"/> on every (re)connection and loss of the connection.
    /// </summary>
    public Task ListenAsync(NpgsqlDataSource dataSource, string channel, Action<string> onSignal, Action clear, ILogger logger,
        CancellationToken stoppingToken) =>
        PostgresChannel.ListenAsync(dataSource, channel,
            payload =>
            {
                Changed();
                onSignal(payload);
            },
            onConnected: () =>
            {
                // Whatever changed while nobody listened is read again from Postgres.
                Changed();
                clear();
                _listening = true;
                return Task.CompletedTask;
            },
            logger, stoppingToken,
            onDisconnected: () =>
            {
                _listening = false;
                Changed();
                clear();
            });
}
