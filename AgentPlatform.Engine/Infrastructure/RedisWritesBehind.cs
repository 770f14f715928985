using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AgentPlatform.Engine.Infrastructure;

/// <summary>
/// Redis writes a response does not wait for: a run's settle and an agent's track record. The caller sends the command
/// before it answers (StackExchange.Redis queues it at once, in order, on the one multiplexer connection, so whatever this
/// process asks Redis next, such as the next request's admission, is run after it) and hands the pending reply here instead
/// of awaiting a round trip the client does not need. Each write handles its own failures; this only keeps count, so a
/// clean shutdown waits for the replies still in flight before the connection closes.
/// Nothing in StackExchange.Redis or the host tracks in-flight commands for shutdown, hence this small counter.
/// </summary>
public sealed class RedisWritesBehind(ILogger<RedisWritesBehind> logger) : IHostedService
{
    private int _pending;

    public int Pending => Volatile.Read(ref _pending);

    /// <summary>Counts <paramref name="write"/> until its reply arrives; a failure it did not handle itself is logged here.</summary>
    public void Track(Task write)
    {
        if (write.IsCompletedSuccessfully) return;
        Interlocked.Increment(ref _pending);
        write.ContinueWith(static (done, state) =>
        {
            var self = (RedisWritesBehind)state!;
            if (done.Exception is { } e) self.Failed(e.GetBaseException());
            Interlocked.Decrement(ref self._pending);
        }, this, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private void Failed(Exception e) => logger.LogWarning(e, "A Redis write sent behind a response failed");

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Waits (up to the host's shutdown timeout) for the replies of writes still in flight.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        while (Pending > 0 && !cancellationToken.IsCancellationRequested)
        {
            await Task.Delay(5, CancellationToken.None);
        }
        if (Pending > 0) logger.LogWarning("{Count} Redis writes were still in flight at shutdown", Pending);
    }
}
