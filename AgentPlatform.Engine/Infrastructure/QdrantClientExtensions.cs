using System.Data.Common;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Qdrant.Client;

namespace Microsoft.Extensions.Hosting;

/// <summary>Binds <c>Aspire:Qdrant:Client</c>, the section Aspire's own Qdrant client integration reads.</summary>
public sealed class QdrantClientSettings
{
    public const string SectionName = "Aspire:Qdrant:Client";

    /// <summary>The gRPC endpoint (Qdrant's port 6334).</summary>
    public Uri? Endpoint { get; set; }

    /// <summary>The API key, sent as the <c>api-key</c> header.</summary>
    public string? Key { get; set; }

    public bool DisableHealthChecks { get; set; }

    public TimeSpan HealthCheckTimeout { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>Deadline of each gRPC call.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Reads <c>Endpoint=http://host:6334;Key=…</c>, the connection string Aspire injects.</summary>
    public void ParseConnectionString(string connectionString)
    {
        var parts = new DbConnectionStringBuilder { ConnectionString = connectionString };
        if (!parts.TryGetValue("Endpoint", out var endpoint) || !Uri.TryCreate(endpoint?.ToString(), UriKind.Absolute, out var uri)
            || uri.Scheme is not ("http" or "https"))
        {
            throw new OptionsValidationException("ConnectionStrings:qdrant", typeof(QdrantClientSettings),
                ["ConnectionStrings:qdrant must be \"Endpoint=http(s)://host:port;Key=…\" (the gRPC port, 6334)."]);
        }
        Endpoint = uri;
        if (parts.TryGetValue("Key", out var key) && key?.ToString() is { Length: > 0 } text) Key = text;
    }
}

/// <summary>
/// Registers <see cref="QdrantClient"/> the way Aspire's <c>AddQdrantClient</c> does (that package, Aspire.Qdrant.Client,
/// is not on our package mirror): settings from the connection string and <c>Aspire:Qdrant:Client</c>, one shared
/// client, and a health check. Its gRPC calls are traced by the HttpClient instrumentation (Grpc.Net.Client sends them
/// through HttpClient). Unlike Aspire's, a missing connection string is not an error: the platform then uses its
/// embedded vector store.
/// </summary>
public static class QdrantClientExtensions
{
    public static IHostApplicationBuilder AddQdrantClient(this IHostApplicationBuilder builder, string connectionName,
        Action<QdrantClientSettings>? configureSettings = null)
    {
        var settings = new QdrantClientSettings();
        builder.Configuration.GetSection(QdrantClientSettings.SectionName).Bind(settings);
        if (builder.Configuration.GetConnectionString(connectionName) is { Length: > 0 } connectionString)
        {
            settings.ParseConnectionString(connectionString);
        }
        configureSettings?.Invoke(settings);
        if (settings.Endpoint is null) return builder;

        builder.Services.AddSingleton(settings);
        builder.Services.AddSingleton(sp => new QdrantClient(settings.Endpoint, settings.Key, settings.Timeout,
            sp.GetRequiredService<ILoggerFactory>()));

        if (!settings.DisableHealthChecks)
        {
            // Degraded, not unhealthy: without Qdrant, the semantic cache and long-term memory are what suffer.
            builder.Services.AddHealthChecks().Add(new HealthCheckRegistration(connectionName,
                sp => new QdrantHealthCheck(sp.GetRequiredService<QdrantClient>()), HealthStatus.Degraded, ["ready"],
                settings.HealthCheckTimeout));
        }
        return builder;
    }
}

/// <summary>Qdrant's own gRPC health call.</summary>
public sealed class QdrantHealthCheck(QdrantClient client) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var reply = await client.HealthAsync(cancellationToken);
        return HealthCheckResult.Healthy($"Qdrant {reply.Version} answers.");
    }
}
