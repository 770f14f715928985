using AgentPlatform.Engine.Telemetry;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AgentPlatform.Engine.Conversations;

/// <summary>Counts the active conversations for the <c>agent_active_conversations</c> gauge every <see cref="Interval"/>.</summary>
public sealed class ActiveConversations(IServiceScopeFactory scopes, Data.EngineReadiness readiness, ILogger<ActiveConversations> logger)
    : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(15);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // No table to count before the engine is prepared (an Api migrating a fresh database in the background).
        await readiness.WhenReady.WaitAsync(stoppingToken);
        using var timer = new PeriodicTimer(Interval);
        do
        {
            try
            {
                await using var scope = scopes.CreateAsyncScope();
                var count = await scope.ServiceProvider.GetRequiredService<ConversationStore>().CountActiveAsync(stoppingToken);
                Interlocked.Exchange(ref PlatformTelemetry.ActiveConversations, count);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogDebug("Could not count active conversations: {Message}", e.Message);
            }
        } while (await timer.WaitForNextTickAsync(stoppingToken));
    }
}
