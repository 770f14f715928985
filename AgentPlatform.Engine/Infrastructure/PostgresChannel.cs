using Microsoft.Extensions.Logging;
using Npgsql;

namespace AgentPlatform.Engine.Infrastructure;

/// <summary>
/// Postgres LISTEN/NOTIFY on one channel: publish a payload, or listen with automatic reconnection.
/// Hand-written because neither EF Core nor Hangfire offers a change feed; callers re-read their
/// state on a timer as well, which covers signals lost while reconnecting.
/// </summary>
public static class PostgresChannel
{
    public static async Task PublishAsync(NpgsqlDataSource dataSource, string channel, string payload, ILogger logger)
    {
        try
        {
            await using var command = dataSource.CreateCommand($"SELECT pg_notify('{channel}', $1)");
            command.Parameters.Add(new NpgsqlParameter { Value = payload });
            await command.ExecuteNonQueryAsync();
        }
        catch (NpgsqlException e)
        {
            logger.LogWarning(e, "Could not publish on {Channel}", channel);
        }
    }

    /// <summary>Publishes several payloads in one statement (one round trip and one transaction), in their order.</summary>
    public static async Task PublishManyAsync(NpgsqlDataSource dataSource, string channel, IReadOnlyList<string> payloads, ILogger logger)
    {
        try
        {
            await using var command = dataSource.CreateCommand($"SELECT pg_notify('{channel}', p) FROM unnest(@payloads) WITH ORDINALITY AS s(p, n) ORDER BY n");
            command.Parameters.Add(PostgresArrays.Text("payloads", payloads));
            await command.ExecuteNonQueryAsync();
        }
        catch (NpgsqlException e)
        {
            logger.LogWarning(e, "Could not publish {Count} signals on {Channel}", payloads.Count, channel);
        }
    }

    /// <summary>
    /// Calls <paramref name="onConnected"/> after each (re)connection, <paramref name="onPayload"/> per signal, and
    /// <paramref name="onDisconnected"/> when the connection is lost (signals sent until the next connection are missed).
    /// </summary>
    public static async Task ListenAsync(NpgsqlDataSource dataSource, string channel, Action<string> onPayload,
        Func<Task> onConnected, ILogger logger, CancellationToken stoppingToken, Action? onDisconnected = null)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = await dataSource.OpenConnectionAsync(stoppingToken);
                connection.Notification += (_, e) => onPayload(e.Payload);
                await using (var listen = new NpgsqlCommand($"LISTEN {channel}", connection))
                {
                    await listen.ExecuteNonQueryAsync(stoppingToken);
                }
                await onConnected();
                while (!stoppingToken.IsCancellationRequested) await connection.WaitAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                onDisconnected?.Invoke();
                logger.LogWarning(e, "Listener on {Channel} lost its connection; reconnecting", channel);
                await Task.Delay(TimeSpan.FromSeconds(1), stoppingToken).ContinueWith(_ => { });
            }
        }
    }
}
