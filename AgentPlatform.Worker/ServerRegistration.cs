using AgentPlatform.Engine.Tasks;
using Hangfire.Server;
using Microsoft.Extensions.Options;

namespace AgentPlatform.Worker;

/// <summary>
/// Puts this Hangfire server back on the storage's server list when it vanished from it. Redis loses the list in a
/// restart without persistence, and Hangfire.Redis's heartbeat only rewrites the heartbeat field, so the Worker would keep
/// working while /health said no Worker was alive and jobs it runs looked abandoned. (Hangfire.PostgreSql notices itself.)
/// </summary>
public sealed class ServerRegistration(IOptions<QueueOptions> options, ILogger<ServerRegistration> logger) : IBackgroundProcess
{
    public void Execute(BackgroundProcessContext context)
    {
        if (context.StoppingToken.WaitHandle.WaitOne(options.Value.HeartbeatInterval)) return;
        if (context.Storage.GetMonitoringApi().Servers().Any(s => s.Name == context.ServerId)) return;
        using var connection = context.Storage.GetConnection();
        connection.AnnounceServer(context.ServerId, new ServerContext { Queues = TaskQueue.Queues, WorkerCount = options.Value.WorkerCount });
        logger.LogWarning("Hangfire server {ServerId} was missing from the job storage (lost in a restart); announced it again", context.ServerId);
    }
}
