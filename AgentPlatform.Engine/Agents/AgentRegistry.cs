using System.Collections.Frozen;
using System.Text.Json;
using AgentPlatform.Engine.Data;
using AgentPlatform.Engine.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace AgentPlatform.Engine.Agents;

/// <summary>Where an agent's definition comes from.</summary>
public enum AgentSource
{
    Configuration,
    Database,
}

/// <summary>One version of the set of agents; replaced as a whole when anything changes.</summary>
public sealed record AgentSnapshot(long Version, FrozenDictionary<string, AgentDefinition> Agents,
    FrozenDictionary<string, AgentSource> Sources, string DefaultAgent)
{
    public IReadOnlyList<AgentDefinition> All => Agents.Values.OrderBy(a => a.Name, StringComparer.Ordinal).ToList();
}

/// <summary>
/// The agents every Api and Worker instance uses: configured ones, overridden and extended by the
/// ones the admin stores in Postgres. A change is announced with NOTIFY and every instance reloads
/// within a second, without restart; a 30-second re-read covers missed signals.
/// </summary>
public sealed class AgentRegistry : BackgroundService
{
    public const string Auto = "auto";
    private const string Channel = "agent_changes";
    private static readonly TimeSpan Reread = TimeSpan.FromSeconds(30);
    private static readonly JsonSerializerOptions StorageJson = new() { PropertyNameCaseInsensitive = true };

    private readonly IOptionsMonitor<AgentOptions> _options;
    private readonly IServiceScopeFactory _scopes;
    private readonly NpgsqlDataSource _dataSource;
    private readonly ILogger<AgentRegistry> _logger;
    private readonly SemaphoreSlim _reloadLock = new(1, 1);
    private IReadOnlyList<StoredAgent> _stored = [];
    private Task? _firstLoad;
    private long _version;

    public AgentRegistry(IOptionsMonitor<AgentOptions> options, IServiceScopeFactory scopes, NpgsqlDataSource dataSource,
        ILogger<AgentRegistry> logger, Data.EngineReadiness? readiness = null)
    {
        _readiness = readiness;
        _options = options;
        _scopes = scopes;
        _dataSource = dataSource;
        _logger = logger;
        Current = Build();
        options.OnChange(_ => Current = Build());
    }

    public AgentSnapshot Current { get; private set; }

    public AgentDefinition? Find(string name) => Current.Agents.GetValueOrDefault(name);

    /// <summary>The default agent for null or "auto".</summary>
    public AgentDefinition? Resolve(string? agentType) =>
        string.IsNullOrWhiteSpace(agentType) || string.Equals(agentType, Auto, StringComparison.OrdinalIgnoreCase)
            ? Find(Current.DefaultAgent)
            : Find(agentType);

    /// <summary>Completes once the stored agents have been read at least once; a failed first read is tried again.</summary>
    public Task EnsureLoadedAsync()
    {
        var load = _firstLoad;
        if (load is null || load.IsFaulted || load.IsCanceled) _firstLoad = load = ReloadAsync(CancellationToken.None);
        return load;
    }

    public async Task<StoredAgent?> FindStoredAsync(string name, CancellationToken cancellationToken)
    {
        await using var scope = _scopes.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<AgentDbContext>().Agents.AsNoTracking()
            .FirstOrDefaultAsync(a => a.Name == name, cancellationToken);
    }

    /// <summary>Creates or replaces a stored agent and tells every instance.</summary>
    public async Task SaveAsync(AgentDefinition definition, CancellationToken cancellationToken)
    {
        await UpsertAsync(definition.Name, JsonSerializer.Serialize(definition, StorageJson), cancellationToken);
    }

    /// <summary>
    /// Removes an agent: a stored-only agent's row goes; a configured agent is hidden by a tombstone row.
    /// </summary>
    public async Task DeleteAsync(string name, CancellationToken cancellationToken)
    {
        if (_options.CurrentValue.Definitions.ContainsKey(name))
        {
            await UpsertAsync(name, "null", cancellationToken);
            return;
        }
        await using (var scope = _scopes.CreateAsyncScope())
        {
            await scope.ServiceProvider.GetRequiredService<AgentDbContext>().Agents.Where(a => a.Name == name)
                .ExecuteDeleteAsync(cancellationToken);
        }
        await ChangedEverywhereAsync(name);
    }

    private async Task UpsertAsync(string name, string json, CancellationToken cancellationToken)
    {
        await using (var scope = _scopes.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<AgentDbContext>();
            await db.Database.ExecuteSqlInterpolatedAsync($"""
                INSERT INTO agents ("Name", "DefinitionJson", "UpdatedAt") VALUES ({name}, {json}::jsonb, {DateTimeOffset.UtcNow})
                ON CONFLICT ("Name") DO UPDATE SET "DefinitionJson" = EXCLUDED."DefinitionJson", "UpdatedAt" = EXCLUDED."UpdatedAt"
                """, cancellationToken);
        }
        await ChangedEverywhereAsync(name);
    }

    private async Task ChangedEverywhereAsync(string name)
    {
        // This instance sees its own write at once; the others on the signal.
        await ReloadAsync(CancellationToken.None);
        await PostgresChannel.PublishAsync(_dataSource, Channel, name, _logger);
    }

    private readonly Data.EngineReadiness? _readiness;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Preparing the engine migrates the schema and loads the stored agents; before that (an Api preparing in the background
        // against a fresh database) there is no table to read, and reading it only logged errors.
        if (_readiness is not null) await _readiness.WhenReady.WaitAsync(stoppingToken).ContinueWith(_ => { });
        if (stoppingToken.IsCancellationRequested) return;
        var listening = PostgresChannel.ListenAsync(_dataSource, Channel,
            name => { _ = ReloadSafelyAsync(stoppingToken); }, () => ReloadSafelyAsync(stoppingToken), _logger, stoppingToken);
        while (!stoppingToken.IsCancellationRequested)
        {
            await Task.Delay(Reread, stoppingToken).ContinueWith(_ => { });
            await ReloadSafelyAsync(stoppingToken);
        }
        await listening;
    }

    private async Task ReloadSafelyAsync(CancellationToken cancellationToken)
    {
        try
        {
            await ReloadAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Shutting down: nothing to reload for.
        }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException or OperationCanceledException)
        {
            _logger.LogWarning(e, "Could not reload stored agents; keeping version {Version}", Current.Version);
        }
    }

    private async Task ReloadAsync(CancellationToken cancellationToken)
    {
        await _reloadLock.WaitAsync(cancellationToken);
        try
        {
            await using var scope = _scopes.CreateAsyncScope();
            _stored = await scope.ServiceProvider.GetRequiredService<AgentDbContext>().Agents.AsNoTracking().ToListAsync(cancellationToken);
            Current = Build();
        }
        finally
        {
            _reloadLock.Release();
        }
    }

    private AgentSnapshot Build()
    {
        var options = _options.CurrentValue;
        var agents = new Dictionary<string, AgentDefinition>(StringComparer.OrdinalIgnoreCase);
        var sources = new Dictionary<string, AgentSource>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, definition) in options.Definitions)
        {
            agents[name] = Named(name, definition);
            sources[name] = AgentSource.Configuration;
        }
        foreach (var stored in _stored)
        {
            var definition = JsonSerializer.Deserialize<AgentDefinition>(stored.DefinitionJson, StorageJson);
            if (definition is null)
            {
                agents.Remove(stored.Name);
                sources.Remove(stored.Name);
                continue;
            }
            agents[stored.Name] = Named(stored.Name, definition);
            sources[stored.Name] = AgentSource.Database;
        }
        return new AgentSnapshot(Interlocked.Increment(ref _version), agents.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase),
            sources.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase), options.DefaultAgent);
    }

    // Definitions are shared by every reader of a snapshot; each snapshot gets its own copies.
    private static AgentDefinition Named(string name, AgentDefinition definition)
    {
        var copy = JsonSerializer.Deserialize<AgentDefinition>(JsonSerializer.Serialize(definition, StorageJson), StorageJson)!;
        copy.Name = name;
        return copy;
    }
}
