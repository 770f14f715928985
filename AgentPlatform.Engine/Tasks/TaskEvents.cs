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

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        PostgresChannel.ListenAsync(dataSource, Channel, payload =>
        {
            if (Guid.TryParse(payload, out var id) && _waiters.TryRemove(id, out var waiter)) waiter.TrySetResult();
        }, () => Task.CompletedTask, logger, stoppingToken);
}
