using System.Collections.Concurrent;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using AgentPlatform.Engine.Infrastructure;
using Npgsql;

namespace AgentPlatform.Engine.Tasks;

/// <summary>
/// "Task X changed" signals between processes over Postgres LISTEN/NOTIFY, so a long-polling
/// status request wakes as soon as the Worker finishes a task instead of polling the table;
/// a 2-second re-read covers any signal lost while the listening connection reconnects.
/// </summary>
public sealed class TaskEvents(NpgsqlDataSource dataSource, ILogger<TaskEvents> logger) : BackgroundService
{
    private const string Channel = "agent_task_events";
    private static readonly TimeSpan Reread = TimeSpan.FromSeconds(2);

    private readonly ConcurrentDictionary<Guid, TaskCompletionSource> _waiters = new();
    private readonly ConcurrentDictionary<Guid, Watcher> _watchers = new();

    // Signals published while a send is in flight go together in its next statement.
    private GroupCommit<(string Payload, TaskCompletionSource Sent)>? _outbox;
    private GroupCommit<(string Payload, TaskCompletionSource Sent)> Outbox => LazyInitializer.EnsureInitialized(ref _outbox, () => new(SendAsync));

    /// <summary>
    /// Signals a change once it is committed; completes when the signal is sent. Signals published while another send is
    /// in flight go together in the next one (<see cref="GroupCommit{T}"/>): a Worker draining a backlog signalled each
    /// claim and each result in a Postgres round trip and transaction of its own.
    /// </summary>
    /// <param name="by">The lease owner whose run made the change; its own watcher does not need to hear about it.</param>
    public Task PublishAsync(Guid taskId, Guid? by = null)
    {
        var sent = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Outbox.Add((by is null ? taskId.ToString() : $"{taskId}:{by}", sent));
        return sent.Task;
    }

    private async Task SendAsync(List<(string Payload, TaskCompletionSource Sent)> batch)
    {
        try
        {
            await PostgresChannel.PublishManyAsync(dataSource, Channel, batch.ConvertAll(s => s.Payload), logger);
        }
        catch (Exception e)
        {
            // A signal is a hint (waiters re-read on a timer): never one that leaves its publisher waiting.
            logger.LogWarning(e, "Could not publish {Count} task signals", batch.Count);
        }
        foreach (var (_, sent) in batch) sent.TrySetResult();
    }

    /// <summary>Waits until <paramref name="isDone"/> holds for the task or the time is up.</summary>
    public async Task<T> WaitAsync<T>(Guid taskId, Func<CancellationToken, Task<T>> read, Func<T, bool> isDone,
        TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = DateTimeOffset.UtcNow + timeout;
        while (true)
        {
            var signal = _waiters.GetOrAdd(taskId, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
            var value = await read(cancellationToken);
            var remaining = deadline - DateTimeOffset.UtcNow;
            if (isDone(value) || remaining <= TimeSpan.Zero)
            {
                _waiters.TryRemove(KeyValuePair.Create(taskId, signal));
                return value;
            }
            await Task.WhenAny(signal.Task, Task.Delay(remaining < Reread ? remaining : Reread, cancellationToken));
            cancellationToken.ThrowIfCancellationRequested();
        }
    }

    /// <summary>
    /// Calls <paramref name="onChange"/> whenever the task is signalled as changed by anyone but <paramref name="owner"/>'s
    /// run, until disposed (one watcher per task). A run's own claim and result are no news to it: checking them cost each
    /// task a query, often cancelled (a Postgres cancel request is a connection of its own).
    /// </summary>
    public IDisposable Watch(Guid taskId, Guid owner, Action onChange)
    {
        var watcher = new Watcher(owner, onChange);
        _watchers[taskId] = watcher;
        return new Unwatch(this, taskId, watcher);
    }

    private sealed record Watcher(Guid Owner, Action OnChange);

    private sealed record Unwatch(TaskEvents Events, Guid TaskId, Watcher Watcher) : IDisposable
    {
        public void Dispose() => Events._watchers.TryRemove(KeyValuePair.Create(TaskId, Watcher));
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        PostgresChannel.ListenAsync(dataSource, Channel, payload =>
        {
            var separator = payload.IndexOf(':');
            if (!Guid.TryParse(separator < 0 ? payload : payload[..separator], out var id)) return;
            Guid? by = separator >= 0 && Guid.TryParse(payload.AsSpan(separator + 1), out var owner) ? owner : null;
            if (_waiters.TryRemove(id, out var waiter)) waiter.TrySetResult();
            if (_watchers.TryGetValue(id, out var watcher) && watcher.Owner != by) watcher.OnChange();
        }, () => Task.CompletedTask, logger, stoppingToken);
}
