using System.Diagnostics.Metrics;
using AgentPlatform.Engine.Tasks;
using AgentPlatform.Engine.Telemetry;
using Hangfire;

namespace AgentPlatform.Api.Health;

/// <summary><c>agent_task_queue_depth{priority}</c>: tasks waiting in each Hangfire queue, read at scrape time.</summary>
public sealed class QueueDepthGauge(JobStorage storage, ILogger<QueueDepthGauge> logger) : IHostedService
{
    private ObservableGauge<long>? _gauge;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _gauge = PlatformTelemetry.Meter.CreateObservableGauge("agent_task_queue_depth", Measure,
            description: "Tasks waiting in the queue, by priority");
        return Task.CompletedTask;
    }

    private IEnumerable<Measurement<long>> Measure()
    {
        List<Measurement<long>> measurements = [];
        try
        {
            var monitoring = storage.GetMonitoringApi();
            foreach (var queue in TaskQueue.Queues)
                measurements.Add(new Measurement<long>(monitoring.EnqueuedCount(queue), new KeyValuePair<string, object?>("priority", queue)));
        }
        catch (Exception e) when (e is Npgsql.NpgsqlException or StackExchange.Redis.RedisException or InvalidOperationException)
        {
            // A scrape during a store outage reports nothing rather than failing the whole /metrics page.
            logger.LogDebug(e, "Queue depth unavailable");
        }
        return measurements;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
