using AgentPlatform.Engine.Tasks;
using AgentPlatform.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace AgentPlatform.Tests.Tasks;

/// <summary>Task change signals, which wake long-polls and stop runs whose task was cancelled.</summary>
[Collection(PlatformCollection.Name)]
public sealed class TaskEventsTests(PlatformFixture platform)
{
    [Fact]
    public async Task Signals_published_at_once_all_arrive_each_in_its_order()
    {
        await using var listener = new NpgsqlConnection(platform.DatabaseConnectionString);
        await listener.OpenAsync();
        var received = new List<string>();
        listener.Notification += (_, e) => received.Add(e.Payload);
        await using (var listen = new NpgsqlCommand("LISTEN agent_task_events", listener)) await listen.ExecuteNonQueryAsync();
        var events = platform.Api.Services.GetRequiredService<TaskEvents>();
        var (owner, tasks) = (Guid.NewGuid(), Enumerable.Range(0, 50).Select(_ => Guid.NewGuid()).ToList());

        // Each task's claim then its result, published together by many runs: they share statements.
        await Task.WhenAll(tasks.Select(async id =>
        {
            await events.PublishAsync(id, owner);
            await events.PublishAsync(id);
        }));
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (received.Count(p => tasks.Any(t => p.StartsWith(t.ToString()))) < 2 * tasks.Count)
            await listener.WaitAsync(deadline.Token);

        foreach (var id in tasks)
            Assert.Equal([$"{id}:{owner}", $"{id}"], received.Where(p => p.StartsWith(id.ToString())));
    }
}
