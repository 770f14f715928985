using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace AgentPlatform.Tests.Infrastructure;

/// <summary>
/// The whole platform for integration tests: real Postgres and Redis processes, the LLM double, the
/// Api on Kestrel and the Worker as a child process, all on throwaway ports and directories.
/// </summary>
public sealed class PlatformFixture : IAsyncLifetime
{
    /// <summary>Settings over the test defaults, for the Api and the Worker alike (the bench compares configurations with it).</summary>
    public IReadOnlyDictionary<string, string> Overrides { get; init; } = new Dictionary<string, string>();

    public const string AdminKey = "test-admin-key-0123456789";
    public const string Model = "gpt-4o-mini";
    public const string EmbeddingModel = "text-embedding-3-small";

    public PostgresServer Postgres { get; private set; } = null!;
    public RedisServer Redis { get; private set; } = null!;
    public LlmDouble Llm { get; private set; } = null!;
    public ApiFactory Api { get; private set; } = null!;
    public WorkerProcess Worker { get; private set; } = null!;
    public string DatabaseConnectionString { get; private set; } = "";

    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public async Task InitializeAsync()
    {
        var postgres = PostgresServer.StartAsync();
        var redis = RedisServer.StartAsync();
        var llm = LlmDouble.StartAsync();
        Postgres = await postgres;
        Redis = await redis;
        Llm = await llm;
        DatabaseConnectionString = await Postgres.CreateDatabaseAsync();

        Api = ApiFactory.StartOnKestrel(Settings());
        Worker = new WorkerProcess(Settings());
        await Worker.StartAsync();
    }

    /// <summary>Configuration as environment-variable names, shared by the Api and the Worker.</summary>
    public Dictionary<string, string> Settings(string? redis = null)
    {
        var settings = DefaultSettings(redis);
        foreach (var (key, value) in Overrides) settings[key] = value;
        return settings;
    }

    private Dictionary<string, string> DefaultSettings(string? redis) => new()
    {
        ["ConnectionStrings__agentdb"] = DatabaseConnectionString,
        ["ConnectionStrings__redis"] = redis ?? Redis.ConnectionString,
        ["ConnectionStrings__openai"] = $"Endpoint={Llm.BaseUrl};Key=test-provider-key;Model={Model}",
        ["Auth__AdminKey"] = AdminKey,
        ["Logging__LogLevel__Default"] = "Warning",
        ["Auth__KeyCacheDuration"] = "00:00:00",
        // Long: a task of a key revoked while its caller was cached is refused because of the revocation's signal, not expiry.
        ["Queue__CallerCacheDuration"] = "00:10:00",
        // Every test client connects from 127.0.0.1, so the per-address limit on failed keys would throttle the suite.
        ["Auth__FailedAttemptsPerMinute"] = "1000",
        ["Api__MaxRequestBodyBytes"] = "65536",
        ["Llm__MaxRetries"] = "2",
        ["Llm__RetryBaseDelay"] = "00:00:00.020",
        ["Llm__AttemptTimeout"] = "00:00:30",
        ["Queue__InvisibilityTimeout"] = "00:00:05",
        ["Queue__HeartbeatInterval"] = "00:00:01",
        ["Queue__ShutdownTimeout"] = "00:00:02",
        ["Queue__PollInterval"] = "00:00:01",
        ["Queue__LeaseDuration"] = "00:00:03",
        ["Queue__MaintenanceInterval"] = "00:00:01",
        ["Queue__StrandedAfter"] = "00:00:15",
        ["Queue__DistributedLockTimeout"] = "00:00:05",
        ["Router__StatsCacheDuration"] = "00:00:00",
        ["Router__EmbeddingBreakDuration"] = "00:00:03",
        // The routing tests of the provider's embeddings (and their fallback to the hashed one) run on the shared Api; the
        // default (MiniLM) is measured on its own routers (RouterTests). The tie-breaker would add a classification call to
        // the LLM double in any test whose prompt happens to be a near tie: RouterTests turn it on where they test it.
        ["Router__Embedding"] = "provider",
        ["Router__FallbackEmbedding"] = "hashed",
        ["Router__TieBreakMargin"] = "0",
        // Most tests send a prompt again and expect the model to answer it again: caching is off unless an agent turns it
        // on (cache.enabled), as the caching tests' agents do. ResponseCacheTests checks the default (on) on its own Api.
        ["Cache__Enabled"] = "false",
        // Tests assert on the spans of their own requests, with other tests' requests in the same second: no sampling here.
        // TraceRateSamplerTests checks the sampler.
        ["Telemetry__MaxTracesPerSecond"] = "1000000",
        // Webhooks go to the LLM double on 127.0.0.1; WebhookTests prove the default (false) refuses that.
        ["Webhooks__AllowPrivateTargets"] = "true",
        // A second provider with three keys, for the key-rotation tests.
        ["Llm__Providers__pool__Endpoint"] = Llm.BaseUrl,
        ["Llm__Providers__pool__Keys__0"] = "pool-key-1",
        ["Llm__Providers__pool__Keys__1"] = "pool-key-2",
        ["Llm__Providers__pool__Keys__2"] = "pool-key-3",
        ["Llm__CircuitBreaker__BreakDuration"] = "00:00:02",
        // A real stdio MCP server whose tools join the catalog as testmcp_*; its sleep tool times out after 1 s.
        ["Tools__Mcp__Servers__testmcp__Command"] = "dotnet",
        ["Tools__Mcp__Servers__testmcp__Arguments__0"] = TestMcpServer.DllPath,
        ["Tools__Mcp__RetryInterval"] = "00:00:01",
        ["Tools__Timeouts__testmcp_sleep"] = "00:00:01",
    };

    private readonly List<ApiFactory> _extraApis = [];

    /// <summary>
    /// Another Api instance (a second replica, or one wired to its own Redis). It lives until the
    /// fixture ends: Hangfire keeps process-wide state (log provider, storage) that points at the
    /// latest host, so disposing a host in the middle would break the others in this test process.
    /// </summary>
    public ApiFactory StartExtraApi(string? redis = null, IReadOnlyDictionary<string, string>? overrides = null,
        Action<Dictionary<string, string>>? configure = null)
    {
        var settings = Settings(redis);
        foreach (var (key, value) in overrides ?? new Dictionary<string, string>()) settings[key] = value;
        configure?.Invoke(settings);
        var api = ApiFactory.StartOnKestrel(settings);
        _extraApis.Add(api);
        return api;
    }

    public HttpClient Client(string? key = null) => ClientFor(Api, key);

    public static HttpClient ClientFor(ApiFactory api, string? key)
    {
        var client = api.CreateClient();
        client.Timeout = TimeSpan.FromSeconds(90);
        if (key is not null) client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    /// <summary>Creates a client key through the admin API and returns its secret.</summary>
    public async Task<string> CreateKeyAsync(string tier = "enterprise", string[]? allowedAgents = null)
    {
        var response = await Client(AdminKey).PostAsJsonAsync("/admin/keys",
            new { name = "test-" + Guid.NewGuid().ToString("N")[..6], tier, allowed_agents = allowedAgents });
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<JsonObject>())!["key"]!.GetValue<string>();
    }

    public async Task DisposeAsync()
    {
        if (Worker is not null) await Worker.DisposeAsync();
        foreach (var api in _extraApis) await api.DisposeAsync();
        if (Api is not null) await Api.DisposeAsync();
        if (Llm is not null) await Llm.DisposeAsync();
        if (Redis is not null) await Redis.DisposeAsync();
        if (Postgres is not null) await Postgres.DisposeAsync();
    }
}

[CollectionDefinition(Name)]
public sealed class PlatformCollection : ICollectionFixture<PlatformFixture>
{
    public const string Name = "platform";
}
