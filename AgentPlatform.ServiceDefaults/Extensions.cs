using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Microsoft.Extensions.Hosting;

// The Aspire ServiceDefaults pattern: telemetry, health checks, service discovery and
// standard HTTP resilience, shared by every service of the platform.
public static class Extensions
{
    /// <summary>Activity sources and meters of the platform itself (see AgentPlatform.Engine.Telemetry).</summary>
    public const string PlatformTelemetryName = "AgentPlatform";

    public static TBuilder AddServiceDefaults<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.ConfigureOpenTelemetry();
        builder.AddDefaultHealthChecks();
        builder.Services.AddServiceDiscovery();
        builder.Services.ConfigureHttpClientDefaults(http => http.AddServiceDiscovery());
        return builder;
    }

    /// <summary>Traces started per second before sampling sets in (<see cref="TraceRateSampler"/>).</summary>
    public const int DefaultMaxTracesPerSecond = 50;

    public static TBuilder ConfigureOpenTelemetry<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.Logging.AddOpenTelemetry(logging =>
        {
            logging.IncludeFormattedMessage = true;
            logging.IncludeScopes = true;
        });

        builder.Services.AddOpenTelemetry()
            // Under the AppHost, OTEL_SERVICE_NAME ("api", "worker") names the service, so the dashboard matches
            // telemetry to its resources; standalone, the application's name does.
            .ConfigureResource(resource =>
            {
                if (string.IsNullOrWhiteSpace(builder.Configuration["OTEL_SERVICE_NAME"]))
                    resource.AddService(builder.Environment.ApplicationName);
            })
            .WithMetrics(metrics => metrics
                .AddAspNetCoreInstrumentation()
                .AddHttpClientInstrumentation()
                .AddRuntimeInstrumentation()
                .AddMeter(PlatformTelemetryName)
                .AddPrometheusExporter())
            .WithTracing(tracing => tracing
                .SetSampler(new ParentBasedSampler(new TraceRateSampler(
                    builder.Configuration.GetValue("Telemetry:MaxTracesPerSecond", DefaultMaxTracesPerSecond))))
                // First, so exporters never see the spans it un-records.
                .AddProcessor(new TraceNoiseFilter())
                .AddSource(builder.Environment.ApplicationName)
                .AddSource(PlatformTelemetryName)
                // Microsoft.Extensions.AI's OpenTelemetryChatClient (GenAI semantic conventions).
                .AddSource("Experimental.Microsoft.Extensions.AI")
                .AddAspNetCoreInstrumentation(tracing => tracing.Filter = context => !IsProbe(context.Request.Path))
                .AddHttpClientInstrumentation());
        // Npgsql and Redis spans and metrics come from the Aspire client integrations (AddAgentPlatformEngine).

        if (!string.IsNullOrWhiteSpace(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]))
        {
            builder.Services.AddOpenTelemetry().UseOtlpExporter();
        }

        return builder;
    }

    public static TBuilder AddDefaultHealthChecks<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.Services.AddHealthChecks()
            .AddCheck("self", () => HealthCheckResult.Healthy(), ["live"]);
        return builder;
    }

    private static bool IsProbe(PathString path) =>
        path.StartsWithSegments("/health") || path.StartsWithSegments("/alive") || path.StartsWithSegments("/metrics");

    /// <summary>The authorization policy /metrics requires unless <c>Metrics:AllowAnonymous</c> is true; the service defines it.</summary>
    public const string MetricsPolicy = "metrics";

    /// <summary>/alive (liveness) and /metrics (Prometheus text). /health is mapped by the service.</summary>
    public static WebApplication MapDefaultEndpoints(this WebApplication app)
    {
        // Probes are not traced (the AspNetCore filter below); detach them from the request's unrecorded activity as
        // well, so the health checks' Postgres and Redis calls do not surface as rootless traces every few seconds.
        app.Use((context, next) =>
        {
            if (IsProbe(context.Request.Path)) System.Diagnostics.Activity.Current = null;
            return next(context);
        });
        app.MapHealthChecks("/alive", new HealthCheckOptions { Predicate = r => r.Tags.Contains("live") });
        var metrics = app.MapPrometheusScrapingEndpoint("/metrics");
        // Cost totals, model names and per-key traffic are business data, so a scrape needs the policy (the Api: the admin
        // key) unless Metrics:AllowAnonymous says the port is only reachable by the scraper. The Aspire dashboard is not
        // affected: it receives metrics over OTLP.
        if (!app.Configuration.GetValue<bool>("Metrics:AllowAnonymous")) metrics.RequireAuthorization(MetricsPolicy);
        return app;
    }
}
