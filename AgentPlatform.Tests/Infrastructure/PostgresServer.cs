using Npgsql;

namespace AgentPlatform.Tests.Infrastructure;

/// <summary>A throwaway PostgreSQL cluster: a temp directory, a free port, stopped and deleted on dispose.</summary>
public sealed class PostgresServer : IAsyncDisposable
{
    private readonly string _bin;
    private readonly string _dataDir;

    public int Port { get; }

    private PostgresServer(string bin, string dataDir, int port)
    {
        _bin = bin;
        _dataDir = dataDir;
        Port = port;
    }

    public static async Task<PostgresServer> StartAsync()
    {
        var bin = Directory.GetDirectories("/usr/lib/postgresql").Where(d => int.TryParse(Path.GetFileName(d), out _)).OrderBy(d => int.Parse(Path.GetFileName(d))).Select(d => Path.Combine(d, "bin")).LastOrDefault()
            ?? throw new InvalidOperationException("PostgreSQL is not installed under /usr/lib/postgresql.");
        var dataDir = Path.Combine(Path.GetTempPath(), "agentplatform-pg-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dataDir);
        if (Processes.IsRoot) Processes.Run("chown", "postgres", dataDir);
        Processes.RunAsPostgres(Path.Combine(bin, "initdb"), "-D", dataDir, "-A", "trust", "-U", "postgres", "--no-sync");
        var server = new PostgresServer(bin, dataDir, Processes.FreePort());
        await server.StartAgainAsync();
        return server;
    }

    /// <summary>
    /// Tests run Postgres without durability (no fsync, asynchronous commits): faster, and a test never survives a power
    /// cut. <c>DURABLE_POSTGRES=1</c> (the benchmarks' option) keeps Postgres's defaults, as <c>./run.sh</c> does.
    /// </summary>
    private static readonly string Durability = Environment.GetEnvironmentVariable("DURABLE_POSTGRES") == "1"
        ? "" : " -c fsync=off -c synchronous_commit=off -c full_page_writes=off";

    /// <summary>Starts the stopped server again, on the same port and data.</summary>
    public async Task StartAgainAsync()
    {
        Processes.RunAsPostgres(Path.Combine(_bin, "pg_ctl"), "-D", _dataDir, "-l", Path.Combine(_dataDir, "server.log"), "-w", "-o",
            $"-p {Port} -k {_dataDir} -c listen_addresses=127.0.0.1{Durability} -c max_connections=300",
            "start");
        await Processes.WaitForPortAsync(Port, TimeSpan.FromSeconds(10));
    }

    /// <summary>A fast shutdown: clients are disconnected, as in an outage.</summary>
    public Task StopAsync()
    {
        Processes.RunAsPostgres(Path.Combine(_bin, "pg_ctl"), "-D", _dataDir, "-m", "fast", "-w", "stop");
        return Task.CompletedTask;
    }

    public string ConnectionString(string database) =>
        $"Host=127.0.0.1;Port={Port};Username=postgres;Database={database};Pooling=true;Maximum Pool Size=50";

    public async Task<string> CreateDatabaseAsync(string? name = null)
    {
        name ??= "agentdb_" + Guid.NewGuid().ToString("N")[..10];
        // Unpooled: a pooled connection from before a restart (the fault tests stop this server) would be dead.
        await using var connection = new NpgsqlConnection(ConnectionString("postgres") + ";Pooling=false");
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
        await command.ExecuteNonQueryAsync();
        return ConnectionString(name);
    }

    public ValueTask DisposeAsync()
    {
        try
        {
            Processes.RunAsPostgres(Path.Combine(_bin, "pg_ctl"), "-D", _dataDir, "-m", "immediate", "stop");
        }
        catch (InvalidOperationException)
        {
            // Already stopped.
        }
        try { Directory.Delete(_dataDir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        return ValueTask.CompletedTask;
    }
}
