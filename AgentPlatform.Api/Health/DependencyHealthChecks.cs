using AgentPlatform.Engine.Data;
using AgentPlatform.Engine.Llm;
using AgentPlatform.Engine.Tasks;
using Hangfire;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace AgentPlatform.Api.Health;

/// <summary>A Worker is alive when a Hangfire server that serves our queues sent a heartbeat recently.</summary>
public sealed class WorkerHealthCheck(JobStorage storage, IOptions<QueueOptions> queue) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var freshness = queue.Value.HeartbeatInterval * 4;
        var now = DateTime.UtcNow;
        var alive = storage.GetMonitoringApi().Servers()
            .Count(s => s.Heartbeat is { } beat && now - beat < freshness && s.Queues.Intersect(TaskQueue.Queues).Any());
        return Task.FromResult(alive > 0
            ? HealthCheckResult.Healthy($"{alive} worker(s) alive.")
            : new HealthCheckResult(context.Registration.FailureStatus, "No worker has sent a heartbeat recently; async tasks wait in the queue."));
    }
}

public sealed class LlmHealthCheck(IOptions<LlmOptions> options) : IHealthCheck
{
    /// <summary>Data key: whether the offline model answers. Shown to anonymous callers; the description only to the admin.</summary>
    public const string OfflineData = "offline";

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var llm = options.Value;
        var data = new Dictionary<string, object> { [OfflineData] = llm.IsOffline };
        // Deliberately no call to the provider: a health probe must not spend money.
        return Task.FromResult(llm.IsOffline
            ? HealthCheckResult.Healthy("offline model: no LLM provider is configured; answers are deterministic stand-ins.", data)
            : HealthCheckResult.Healthy($"provider {llm.Endpoint ?? LlmOptions.DefaultEndpoint}, default model {llm.DefaultModel}.", data));
    }
}


/// <summary>Unhealthy until the schema is in place and the stored agents are loaded (the Api takes no work before).</summary>
public sealed class StartupHealthCheck(EngineReadiness readiness) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(readiness.IsReady
            ? HealthCheckResult.Healthy("Schema ready, agents loaded.")
            : new HealthCheckResult(context.Registration.FailureStatus, "Waiting for Postgres to prepare the schema."));
}
