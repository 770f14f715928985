using System.Collections.Concurrent;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace AgentPlatform.Engine.Tasks;

/// <summary>
/// "Task X changed" signals between processes over Postgres LISTEN/NOTIFY, so a long-polling
/// status request wakes as soon as the Worker finishes a task instead of polling the table.
/// Hand-written because neither Hangfire nor EF Core offers a change feed; a 2-second re-read
/// covers any signal lost while the listening connection reconnects.
/// </summary>
public sealed class TaskEvents(NpgsqlDataSource dataSource, ILogger<TaskEvents> logger) : BackgroundService
{
    private const string Channel = "agent_task_events";
    private static readonly TimeSpan Reread = TimeSpan.FromSeconds(2);

    private readonly ConcurrentDictionary<Guid, TaskCompletionSource> _waiters = new();

    public async Task PublishAsync(Guid taskId)
    {
        try
        {
            await using var command = dataSource.CreateCommand($"SELECT pg_notify('{Channel}', $1)");
            command.Parameters.Add(new NpgsqlParameter { Value = taskId.ToString() });
            await command.ExecuteNonQueryAsync();
        }
        catch (NpgsqlException e)
        {
            // A lost signal only delays a waiter until its next re-read.
            logger.LogWarning(e, "Could not publish a change of task {TaskId}", taskId);
        }
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

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = await dataSource.OpenConnectionAsync(stoppingToken);
                connection.Notification += (_, e) =>
                {
                    if (Guid.TryParse(e.Payload, out var id) && _waiters.TryRemove(id, out var waiter)) waiter.TrySetResult();
                };
                await using (var listen = new NpgsqlCommand($"LISTEN {Channel}", connection))
                {
                    await listen.ExecuteNonQueryAsync(stoppingToken);
                }
                while (!stoppingToken.IsCancellationRequested) await connection.WaitAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                logger.LogWarning(e, "Task event listener lost its connection; reconnecting");
                await Task.Delay(TimeSpan.FromSeconds(1), stoppingToken).ContinueWith(_ => { });
            }
        }
    }
}
