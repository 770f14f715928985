using Npgsql;

namespace AgentPlatform.Engine.Infrastructure;

/// <summary>
/// After Postgres restarts, every idle pooled connection is dead, and Npgsql finds out one borrow at a time: each
/// request or sweep round would fail on its own dead connection (up to the pool size). On the first failure that says
/// the server went away, the idle connections are dropped, so the next borrow opens a fresh one.
/// </summary>
public static class PostgresPools
{
    public static void ClearAfter(Exception failure, NpgsqlDataSource? dataSource = null)
    {
        for (var e = failure; e is not null; e = e.InnerException)
        {
            if (e is PostgresException { SqlState: "57P01" or "57P02" or "57P03" } or NpgsqlException { IsTransient: true })
            {
                dataSource?.Clear();
                // Hangfire opens its connections from the connection string: those pools are Npgsql's global ones.
                NpgsqlConnection.ClearAllPools();
                return;
            }
        }
    }
}
