using AgentPlatform.Engine.Infrastructure;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace AgentPlatform.Engine.Tasks;

/// <summary>
/// A run's claim on its task: renewed every third of <see cref="QueueOptions.LeaseDuration"/> while the run lives,
/// and <see cref="Lost"/> fires when the task is no longer this run's (the client cancelled it, or the lease expired
/// and another run took over), so the run stops calling the LLM within about a second of a cancel.
/// </summary>
public sealed class TaskLease : IAsyncDisposable
{
    private readonly CancellationTokenSource _lost = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _renewal;
    private readonly IDisposable _watch;

    internal TaskLease(Guid taskId, Guid owner, TaskLeases leases)
    {
        TaskId = taskId;
        Owner = owner;
        _watch = leases.Events.Watch(taskId, owner, () => _ = CheckAsync(leases));
        _renewal = RenewAsync(leases);
    }

    public Guid TaskId { get; }
    public Guid Owner { get; }
    public CancellationToken Lost => _lost.Token;

    private async Task RenewAsync(TaskLeases leases)
    {
        var interval = leases.Duration / 3;
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(interval, _stop.Token);
                if (!await leases.RenewAsync(TaskId, Owner, _stop.Token)) await LoseAsync();
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (NpgsqlException e)
            {
                // The database is away: keep running; the lease holds for its duration, and the next renewal may work.
                leases.Logger.LogWarning("Could not renew the lease of task {TaskId}: {Message}", TaskId, e.Message);
                PostgresPools.ClearAfter(e, leases.DataSource);
            }
        }
    }

    // A change signal (cancel): look at once instead of at the next renewal. The short query is not cancelled when the run
    // ends meanwhile: cancelling it would cost Postgres a connection of its own.
    private async Task CheckAsync(TaskLeases leases)
    {
        try
        {
            if (!await leases.HoldsAsync(TaskId, Owner, CancellationToken.None)) await LoseAsync();
        }
        catch (Exception e) when (e is NpgsqlException or OperationCanceledException or ObjectDisposedException)
        {
            // The renewal loop keeps watching.
        }
    }

    private async Task LoseAsync()
    {
        if (_lost.IsCancellationRequested) return;
        await _lost.CancelAsync();
    }

    public async ValueTask DisposeAsync()
    {
        _watch.Dispose();
        await _stop.CancelAsync();
        await _renewal;
        _stop.Dispose();
        _lost.Dispose();
    }
}

/// <summary>Starts and keeps task leases; the SQL runs on the shared data source, beside the run's own DbContext.</summary>
public sealed class TaskLeases(NpgsqlDataSource dataSource, TaskEvents events, IOptions<QueueOptions> options, ILogger<TaskLeases> logger)
{
    internal TaskEvents Events => events;
    internal NpgsqlDataSource DataSource => dataSource;
    internal ILogger Logger => logger;
    public TimeSpan Duration => options.Value.LeaseDuration;

    public TaskLease Keep(Guid taskId, Guid owner) => new(taskId, owner, this);

    internal async Task<bool> RenewAsync(Guid taskId, Guid owner, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            """UPDATE agent_tasks SET "LeaseExpiresAt" = now() + $3 WHERE "Id" = $1 AND "LeaseOwner" = $2 AND "Status" = 'running'""");
        command.Parameters.Add(new NpgsqlParameter { Value = taskId });
        command.Parameters.Add(new NpgsqlParameter { Value = owner });
        command.Parameters.Add(new NpgsqlParameter { Value = Duration });
        return await command.ExecuteNonQueryAsync(cancellationToken) == 1;
    }

    internal async Task<bool> HoldsAsync(Guid taskId, Guid owner, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            """SELECT 1 FROM agent_tasks WHERE "Id" = $1 AND "LeaseOwner" = $2 AND "Status" = 'running'""");
        command.Parameters.Add(new NpgsqlParameter { Value = taskId });
        command.Parameters.Add(new NpgsqlParameter { Value = owner });
        return await command.ExecuteScalarAsync(cancellationToken) is not null;
    }
}
