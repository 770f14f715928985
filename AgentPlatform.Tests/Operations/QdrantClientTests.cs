using AgentPlatform.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Qdrant.Client;

namespace AgentPlatform.Tests.Operations;

/// <summary>The Qdrant client registration (shaped like Aspire's AddQdrantClient) against the Qdrant gRPC double.</summary>
public sealed class QdrantClientTests
{
    private static IHost Build(string? connectionString)
    {
        var builder = Host.CreateApplicationBuilder();
        if (connectionString is not null) builder.Configuration["ConnectionStrings:qdrant"] = connectionString;
        builder.AddQdrantClient("qdrant");
        return builder.Build();
    }

    [Fact]
    public async Task Health_check_calls_qdrant_over_grpc_with_the_api_key_from_the_connection_string()
    {
        await using var qdrant = await QdrantDouble.StartAsync();
        using var host = Build(qdrant.ConnectionString("secret-key"));

        var report = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();

        var entry = report.Entries["qdrant"];
        Assert.Equal(HealthStatus.Healthy, entry.Status);
        Assert.Contains(QdrantDouble.Version, entry.Description);
        Assert.Contains(qdrant.Calls, call => call is ("qdrant.Qdrant/HealthCheck", "secret-key"));
    }

    [Fact]
    public async Task Unreachable_qdrant_degrades_health_within_the_check_timeout()
    {
        var qdrant = await QdrantDouble.StartAsync();
        var connectionString = qdrant.ConnectionString("k");
        await qdrant.DisposeAsync();
        using var host = Build(connectionString);

        var started = DateTime.UtcNow;
        var report = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();

        Assert.Equal(HealthStatus.Degraded, report.Entries["qdrant"].Status);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(5));
    }

    [Fact]
    public void Without_a_connection_string_no_client_is_registered()
    {
        using var host = Build(null);

        Assert.Null(host.Services.GetService<QdrantClient>());
    }

    [Fact]
    public void A_malformed_connection_string_names_the_setting()
    {
        var error = Assert.Throws<OptionsValidationException>(() => Build("Endpoint=not-a-url;Key=k"));

        Assert.Contains("ConnectionStrings:qdrant", error.Message);
    }
}
