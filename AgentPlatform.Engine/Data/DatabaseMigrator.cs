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
    /// Applies pending EF Core migrations. EF Core (9+) holds a database-wide migration lock, so
    /// several processes starting together apply them once. Retries while Postgres is still starting.
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
                var db = scope.ServiceProvider.GetRequiredService<AgentDbContext>();
                await db.Database.MigrateAsync(cancellationToken);
                await InstallHangfireSchemaAsync(scope.ServiceProvider.GetRequiredService<NpgsqlDataSource>(), cancellationToken);
                return;
            }
            catch (NpgsqlException e) when (attempt < 30 && (e.IsTransient || e is PostgresException { SqlState: "57P03" }))
            {
                logger.LogWarning("Postgres is not reachable yet ({Message}); retrying", e.Message);
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
            }
        }
    }

    /// <summary>
    /// Hangfire.PostgreSql installs its schema lazily from every process, and two processes starting
    /// together race ("schema already exists"). Installing it here, under an advisory lock, makes it once.
    /// </summary>
    private static async Task InstallHangfireSchemaAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using (var lockCommand = new NpgsqlCommand("SELECT pg_advisory_lock(7201302)", connection))
            await lockCommand.ExecuteNonQueryAsync(cancellationToken);
        try
        {
            PostgreSqlObjectsInstaller.Install(connection, HangfireSchema);
        }
        finally
        {
            await using var unlock = new NpgsqlCommand("SELECT pg_advisory_unlock(7201302)", connection);
            await unlock.ExecuteNonQueryAsync(CancellationToken.None);
        }
    }

    public const string HangfireSchema = "hangfire";
}
