using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Hangfire.PostgreSql;
using Npgsql;

namespace AgentPlatform.Engine.Data;

public static class DatabaseMigrator
{
    /// <summary>
    /// Applies pending EF Core migrations and installs Hangfire's schema, once, even when several
    /// processes start together: all of it runs under one Postgres advisory lock (EF Core's own
    /// migration lock did not stop two processes from applying the same migration in our tests).
    /// Retries while Postgres is still starting.
    /// </summary>
    public static async Task MigrateDatabaseAsync(this IServiceProvider services, CancellationToken cancellationToken = default)
    {
        // A bad configuration stops the service here, naming the setting, before anything touches the database.
        services.GetService<IStartupValidator>()?.Validate();
        var logger = services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(DatabaseMigrator));
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await using var scope = services.CreateAsyncScope();
                var dataSource = scope.ServiceProvider.GetRequiredService<NpgsqlDataSource>();
                await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
                await ExecuteAsync(connection, $"SELECT pg_advisory_lock({MigrationLockId})", cancellationToken);
                try
                {
                    await scope.ServiceProvider.GetRequiredService<AgentDbContext>().Database.MigrateAsync(cancellationToken);
                    PostgreSqlObjectsInstaller.Install(connection, HangfireSchema);
                }
                finally
                {
                    await ExecuteAsync(connection, $"SELECT pg_advisory_unlock({MigrationLockId})", CancellationToken.None);
                }
                return;
            }
            catch (NpgsqlException e) when (attempt < 30 && (e.IsTransient || e is PostgresException { SqlState: "57P03" }))
            {
                logger.LogWarning("Postgres is not reachable yet ({Message}); retrying", e.Message);
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
            }
        }
    }

    /// <summary>Everything a service needs before it takes work: the schema, and the stored agents.</summary>
    public static async Task PrepareEngineAsync(this IServiceProvider services, CancellationToken cancellationToken = default)
    {
        await services.MigrateDatabaseAsync(cancellationToken);
        await services.GetRequiredService<Agents.AgentRegistry>().EnsureLoadedAsync();
    }

    private const long MigrationLockId = 7201302;

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public const string HangfireSchema = "hangfire";
}
