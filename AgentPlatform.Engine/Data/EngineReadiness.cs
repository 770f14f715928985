using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace AgentPlatform.Engine.Data;

/// <summary>Whether the schema is in place and the stored agents are loaded, so the service may take work.</summary>
public sealed class EngineReadiness
{
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public bool IsReady => _ready.Task.IsCompleted;

    public Task WhenReady => _ready.Task;

    internal void MarkReady() => _ready.TrySetResult();
}

/// <summary>
/// Prepares the engine in the background, so a service that starts before Postgres (Azure Container Apps starts
/// everything at once) serves /health meanwhile instead of failing to start.
/// </summary>
public sealed class EnginePreparation(IServiceProvider services) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => services.PrepareEngineAsync(stoppingToken);
}

public static class EngineReadinessExtensions
{
    /// <summary>Prepares the engine in the background (the Api); <see cref="EngineReadiness"/> says when it is done.</summary>
    public static IServiceCollection AddBackgroundEnginePreparation(this IServiceCollection services) =>
        services.AddHostedService<EnginePreparation>();
}
