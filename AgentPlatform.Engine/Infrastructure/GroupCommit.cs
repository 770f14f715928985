using System.Diagnostics;

namespace AgentPlatform.Engine.Infrastructure;

/// <summary>
/// Group commit: the first caller to add an item starts a drain, and items added while a write is in flight are taken
/// together by its next round, so concurrent callers share round trips instead of queueing for one each. Written here
/// because neither Npgsql nor EF Core groups the statements of concurrent callers (short of multiplexing every
/// connection). <paramref name="write"/> gets each batch and must settle its items itself (it is not expected to throw).
/// </summary>
/// <param name="take">Splits what is queued into this round's batch and the rest (default: everything).</param>
/// <param name="pace">
/// Least time from one round's start to the next (default none): an item added right after a round waits for the rest of
/// it and goes with whatever else arrives meanwhile, so under a steady stream rounds are at most one per pace. An item
/// added when no round ran for a pace goes at once, and so does the next round after one <paramref name="take"/> left
/// items behind (it was full: waiting would only delay them).
/// </param>
public sealed class GroupCommit<T>(Func<List<T>, Task> write, Func<List<T>, (List<T> Batch, List<T> Later)>? take = null,
    TimeSpan pace = default)
{
    private readonly Lock _gate = new();
    private List<T> _queued = [];
    private bool _writing;
    // When the last round started (Stopwatch ticks), and whether it left items behind; read and written only by the one
    // drain running at a time.
    private long _lastRound = long.MinValue / 2;
    private bool _full;

    public void Add(T item)
    {
        bool lead;
        lock (_gate)
        {
            _queued.Add(item);
            lead = !_writing;
            _writing = true;
        }
        if (lead) _ = WriteQueuedAsync();
    }

    private async Task WriteQueuedAsync()
    {
        while (true)
        {
            if (pace > TimeSpan.Zero && !_full)
            {
                var wait = pace - Stopwatch.GetElapsedTime(_lastRound);
                if (wait > TimeSpan.Zero) await Task.Delay(wait);
            }
            if (Take() is not { } batch) return;
            _lastRound = Stopwatch.GetTimestamp();
            await write(batch);
        }
    }

    private List<T>? Take()
    {
        lock (_gate)
        {
            if (_queued.Count == 0)
            {
                _writing = false;
                return null;
            }
            List<T> batch;
            if (take is null) (batch, _queued) = (_queued, []);
            else (batch, _queued) = take(_queued);
            _full = _queued.Count > 0;
            return batch;
        }
    }
}
