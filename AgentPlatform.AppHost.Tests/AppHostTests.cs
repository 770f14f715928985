using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace AgentPlatform.AppHost.Tests;

/// <summary>
/// Starts the whole AppHost once for the test class: the Redis, Postgres and Qdrant containers,
/// the Worker and the Api. Needs a container runtime (Docker or Podman).
/// </summary>
public sealed class AppHostFixture : IAsyncLifetime
{
    public const string AdminKey = "apphost-tests-admin-key-0123456789abcdef";

    // The first run pulls the container images.
    private static readonly TimeSpan StartupTimeout = TimeSpan.FromMinutes(5);

    private DistributedApplication? _app;

    public DistributedApplication App => _app ?? throw new InvalidOperationException("The AppHost did not start.");

    public async Task InitializeAsync()
    {
        var appHost = await DistributedApplicationTestingBuilder.CreateAsync<Projects.AgentPlatform_AppHost>();

        // Parameter values come from the AppHost's "Parameters" configuration section and are only
        // read when the app starts, so setting the value before BuildAsync is enough.
        appHost.Configuration["Parameters:admin-key"] = AdminKey;

        // Named volumes are shared with `dotnet run`: drop them, so the tests start from an empty
        // database and never touch a developer's data.
        foreach (var resource in appHost.Resources)
        {
            var volumes = resource.Annotations.OfType<ContainerMountAnnotation>()
                .Where(mount => mount.Type == ContainerMountType.Volume)
                .ToList();

            foreach (var volume in volumes)
            {
                resource.Annotations.Remove(volume);
            }
        }

        _app = await appHost.BuildAsync();
        await _app.StartAsync();

        // The AppHost starts the Api only once Redis, Postgres and Qdrant are healthy, and "api" is
        // healthy once its /health answers 200. The Worker has no health check: running is enough.
        await _app.ResourceNotifications.WaitForResourceHealthyAsync("api").WaitAsync(StartupTimeout);
        await _app.ResourceNotifications.WaitForResourceHealthyAsync("worker").WaitAsync(StartupTimeout);
    }

    public async Task DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.DisposeAsync();
        }
    }
}

public sealed class AppHostTests(AppHostFixture host) : IClassFixture<AppHostFixture>
{
    // Long enough for the Worker to pick the job up and run it, even against a real LLM.
    private static readonly TimeSpan TaskTimeout = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task Async_task_runs_through_the_worker_when_the_apphost_starts()
    {
        // A client key, created with the admin key the fixture gave the AppHost.
        using var admin = CreateClient(AppHostFixture.AdminKey);
        using var created = await admin.PostAsJsonAsync("/admin/keys", new { name = "apphost-test", tier = "pro" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var key = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("key").GetString() ?? "";
        Assert.NotEmpty(key);

        // An async task is queued in Hangfire (Postgres) and answered with 202.
        using var client = CreateClient(key);
        using var accepted = await client.PostAsJsonAsync("/agent/execute", new { task = "Say hello", async_execution = true });
        Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
        var queued = await accepted.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("queued", queued.GetProperty("status").GetString());
        Assert.False(string.IsNullOrEmpty(queued.GetProperty("status_url").GetString()));
        var taskId = queued.GetProperty("task_id").GetString() ?? "";
        Assert.NotEmpty(taskId);

        // The Worker runs it; the status endpoint long-polls (?wait=) until a final state.
        var status = await WaitForFinalStateAsync(client, taskId);
        Assert.Equal("completed", status.GetProperty("status").GetString());
        Assert.True(status.TryGetProperty("result", out var result), "A completed task has a result.");
        Assert.False(string.IsNullOrWhiteSpace(TextOf(result)));
    }

    [Fact]
    public async Task Api_reports_healthy_dependencies()
    {
        using var client = host.App.CreateHttpClient("api", "http");

        using var response = await client.GetAsync("/health");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var checks = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("checks");
        Assert.Equal("healthy", StatusOf(checks.GetProperty("postgres")));
        Assert.Equal("healthy", StatusOf(checks.GetProperty("redis")));
    }

    private HttpClient CreateClient(string apiKey)
    {
        var client = host.App.CreateHttpClient("api", "http");
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        return client;
    }

    private static async Task<JsonElement> WaitForFinalStateAsync(HttpClient client, string taskId)
    {
        using var timeout = new CancellationTokenSource(TaskTimeout);
        while (true)
        {
            var status = await client.GetFromJsonAsync<JsonElement>(
                $"/agent/status/{Uri.EscapeDataString(taskId)}?wait=30", timeout.Token);

            if (status.GetProperty("status").GetString() is "completed" or "failed" or "cancelled")
            {
                return status;
            }
        }
    }

    // A health check is reported either as "healthy" or as an object with a "status".
    private static string? StatusOf(JsonElement check) =>
        check.ValueKind == JsonValueKind.Object ? check.GetProperty("status").GetString() : check.GetString();

    // A result may be plain text or structured JSON.
    private static string? TextOf(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => value.GetString(),
        JsonValueKind.Null or JsonValueKind.Undefined => null,
        _ => value.GetRawText(),
    };
}
