using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Hangfire.PostgreSql;
using Npgsql;
using AgentPlatform.Engine.Tasks;

namespace AgentPlatform.Engine.Data;

public static class DatabaseMigrator
{
    /// <summary>
    /// Applies pending EF Core migrations and installs Hangfire's schema (when Hangfire keeps its jobs in Postgres), once, even when several
    /// processes start together: all of it runs under one Postgres advisory lock (EF Core's own
    /// migration lock did not stop two processes from applying the same migration in our tests).
    /// Retries until Postgres answers, however long that takes: on Azure Container Apps the services
    /// start before the database (azd does not honour WaitFor), and a crash loop would only slow that down.
    /// </summary>
    public static async Task MigrateDatabaseAsync(this IServiceProvider services, CancellationToken cancellationToken = default)
    {
        // A bad configuration stops the service here, naming the setting, before anything touches the database.
        services.GetService<IStartupValidator>()?.Validate();
        var logger = services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(DatabaseMigrator));
        var delay = TimeSpan.FromSeconds(1);
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
                    // Hangfire's tables only where Hangfire keeps its jobs in Postgres (with Redis they would stay empty).
                    if (scope.ServiceProvider.GetRequiredService<IOptions<QueueOptions>>().Value.Storage == QueueStorage.Postgres)
                        PostgreSqlObjectsInstaller.Install(connection, HangfireSchema);
                }
                finally
                {
                    await ExecuteAsync(connection, $"SELECT pg_advisory_unlock({MigrationLockId})", CancellationToken.None);
                }
                if (attempt > 1) logger.LogInformation("Postgres answered after {Attempts} attempts; the schema is ready", attempt);
                return;
            }
            catch (NpgsqlException e) when (!cancellationToken.IsCancellationRequested)
            {
                // Every 10th attempt only, so a long outage does not flood the log.
                if (attempt == 1 || attempt % 10 == 0)
                    logger.LogWarning("Postgres is not reachable yet (attempt {Attempt}: {Message}); retrying every {Delay} s",
                        attempt, e.Message, delay.TotalSeconds);
                await Task.Delay(delay, cancellationToken);
                delay = TimeSpan.FromSeconds(Math.Min(2, delay.TotalSeconds * 2));
            }
        }
    }

    /// <summary>Everything a service needs before it takes work: the schema, and the stored agents.</summary>
    public static async Task PrepareEngineAsync(this IServiceProvider services, CancellationToken cancellationToken = default)
    {
        await services.MigrateDatabaseAsync(cancellationToken);
        await services.GetRequiredService<Agents.AgentRegistry>().EnsureLoadedAsync();
        services.GetService<EngineReadiness>()?.MarkReady();
    }

    private const long MigrationLockId = 7201302;

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public const string HangfireSchema = "hangfire";
}
