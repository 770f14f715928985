using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using AgentPlatform.Tests.Infrastructure;

namespace AgentPlatform.AppHost.Tests;

/// <summary>
/// Starts the real AppHost once for the collection, in existing-server mode (no container runtime here):
/// throwaway Redis and Postgres processes, the LLM double and the Qdrant gRPC double are handed to it as connection
/// strings, and
/// DCP runs the Api and the Worker as processes, with the dashboard on.
/// </summary>
public sealed class AppHostFixture : IAsyncLifetime
{
    public const string AdminKey = "apphost-tests-admin-key-0123456789abcdef";
    public const string DashboardApiKey = "apphost-tests-dashboard-key-0123456789";
    public const string Model = "gpt-4o-mini";

    private static readonly TimeSpan StartupTimeout = TimeSpan.FromMinutes(3);

    private DistributedApplication? _app;

    public DistributedApplication App => _app ?? throw new InvalidOperationException("The AppHost did not start.");
    public PostgresServer Postgres { get; private set; } = null!;
    public RedisServer Redis { get; private set; } = null!;
    public LlmDouble Llm { get; private set; } = null!;
    public QdrantDouble Qdrant { get; private set; } = null!;
    public Uri DashboardUrl { get; private set; } = null!;
    public DateTimeOffset StartedAt { get; private set; }

    public async Task InitializeAsync()
    {
        Postgres = await PostgresServer.StartAsync();
        Redis = await RedisServer.StartAsync();
        Llm = await LlmDouble.StartAsync();
        Qdrant = await QdrantDouble.StartAsync();
        var database = await Postgres.CreateDatabaseAsync("agentdb");

        var appHost = await DistributedApplicationTestingBuilder.CreateAsync<Projects.AgentPlatform_AppHost>(
            new DistributedApplicationTestingBuilderOptions { EnableDashboard = true },
            [
                $"ConnectionStrings:redis={Redis.ConnectionString}",
                $"ConnectionStrings:agentdb={database}",
                $"ConnectionStrings:qdrant={Qdrant.ConnectionString("apphost-qdrant-key")}",
                $"ConnectionStrings:openai=Endpoint={Llm.BaseUrl};Key=apphost-test-provider-key;Model={Model}",
                $"Auth:AdminKey={AdminKey}",
                $"AppHost:DashboardApiKey={DashboardApiKey}",
            ]);

        _app = await appHost.BuildAsync();
        using var timeout = new CancellationTokenSource(StartupTimeout);
        await _app.StartAsync(timeout.Token);
        await _app.ResourceNotifications.WaitForResourceHealthyAsync("api", timeout.Token);
        await _app.ResourceNotifications.WaitForResourceAsync("worker", KnownResourceStates.Running, timeout.Token);
        DashboardUrl = await _app.GetDashboardUrlAsync(timeout.Token) ?? throw new InvalidOperationException("No dashboard URL.");
        StartedAt = DateTimeOffset.UtcNow;
    }

    public HttpClient Client(string? apiKey = AdminKey)
    {
        var client = App.CreateHttpClient("api", "http");
        client.Timeout = TimeSpan.FromMinutes(2);
        if (apiKey is not null) client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        return client;
    }

    /// <summary>The dashboard's telemetry HTTP API (OTLP JSON), authenticated with the key the fixture gave the AppHost.</summary>
    public HttpClient Dashboard()
    {
        var client = new HttpClient { BaseAddress = DashboardUrl, Timeout = TimeSpan.FromSeconds(30) };
        client.DefaultRequestHeaders.Add("X-API-Key", DashboardApiKey);
        return client;
    }

    public async Task<string> CreateKeyAsync()
    {
        using var admin = Client();
        using var created = await admin.PostAsJsonAsync("/admin/keys", new { name = "apphost-" + Guid.NewGuid().ToString("N")[..6], tier = "enterprise" });
        created.EnsureSuccessStatusCode();
        return (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("key").GetString()!;
    }

    public async Task DisposeAsync()
    {
        if (_app is not null) await _app.DisposeAsync();
        if (Llm is not null) await Llm.DisposeAsync();
        if (Qdrant is not null) await Qdrant.DisposeAsync();
        if (Redis is not null) await Redis.DisposeAsync();
        if (Postgres is not null) await Postgres.DisposeAsync();
    }
}

[CollectionDefinition(Name)]
public sealed class AppHostCollection : ICollectionFixture<AppHostFixture>
{
    public const string Name = "apphost";
}
