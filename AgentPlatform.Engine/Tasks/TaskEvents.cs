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
    private readonly ConcurrentDictionary<Guid, Action> _watchers = new();

    public Task PublishAsync(Guid taskId) => PostgresChannel.PublishAsync(dataSource, Channel, taskId.ToString(), logger);

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

    /// <summary>Calls <paramref name="onChange"/> whenever the task is signalled as changed, until disposed (one watcher per task).</summary>
    public IDisposable Watch(Guid taskId, Action onChange)
    {
        _watchers[taskId] = onChange;
        return new Unwatch(this, taskId, onChange);
    }

    private sealed record Unwatch(TaskEvents Events, Guid TaskId, Action OnChange) : IDisposable
    {
        public void Dispose() => Events._watchers.TryRemove(KeyValuePair.Create(TaskId, OnChange));
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        PostgresChannel.ListenAsync(dataSource, Channel, payload =>
        {
            if (!Guid.TryParse(payload, out var id)) return;
            if (_waiters.TryRemove(id, out var waiter)) waiter.TrySetResult();
            if (_watchers.TryGetValue(id, out var watcher)) watcher();
        }, () => Task.CompletedTask, logger, stoppingToken);
}
