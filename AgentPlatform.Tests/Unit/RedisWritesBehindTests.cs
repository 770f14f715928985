using AgentPlatform.Engine.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;

namespace AgentPlatform.Tests.Unit;

public sealed class RedisWritesBehindTests
{
    [Fact]
    public async Task Shutdown_waits_for_the_replies_of_writes_still_in_flight()
    {
        var writes = new RedisWritesBehind(NullLogger<RedisWritesBehind>.Instance);
        var settle = new TaskCompletionSource();
        var failing = new TaskCompletionSource();
        writes.Track(settle.Task);
        writes.Track(failing.Task);
        writes.Track(Task.CompletedTask);
        Assert.Equal(2, writes.Pending);

        var stop = writes.StopAsync(CancellationToken.None);
        failing.SetException(new InvalidOperationException("the write failed"));
        await Task.Delay(100);
        Assert.False(stop.IsCompleted);
        Assert.Equal(1, writes.Pending);

        settle.SetResult();
        await stop.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(0, writes.Pending);
    }

    [Fact]
    public async Task Shutdown_gives_up_when_the_host_stops_waiting()
    {
        var writes = new RedisWritesBehind(NullLogger<RedisWritesBehind>.Instance);
        writes.Track(new TaskCompletionSource().Task);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));

        await writes.StopAsync(timeout.Token).WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(1, writes.Pending);
    }
}
