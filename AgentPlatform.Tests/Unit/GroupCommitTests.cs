using System.Diagnostics;
using AgentPlatform.Engine.Infrastructure;
using AgentPlatform.Tests.Infrastructure;

namespace AgentPlatform.Tests.Unit;

public sealed class GroupCommitTests
{
    [Fact]
    public async Task A_paced_group_commit_writes_the_first_item_at_once_and_groups_the_stream_after_it()
    {
        var pace = TimeSpan.FromSeconds(1);
        var rounds = new List<(List<int> Items, TimeSpan At)>();
        var clock = Stopwatch.StartNew();
        var written = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var commit = new GroupCommit<int>(batch =>
        {
            lock (rounds) rounds.Add((batch, clock.Elapsed));
            if (batch.Contains(9)) written.TrySetResult();
            return Task.CompletedTask;
        }, pace: pace);

        // A steady stream, one item every 10 ms (well inside the pace).
        for (var i = 0; i < 10; i++)
        {
            commit.Add(i);
            await Task.Delay(10);
        }
        await written.Task.WaitAsync(TimeSpan.FromSeconds(10));

        // The first went alone, before the next item was added; the rest waited for the pace and went together.
        Assert.Equal([0], rounds[0].Items);
        Assert.True(rounds[0].At < TimeSpan.FromMilliseconds(100), $"first round at {rounds[0].At}");
        Assert.InRange(rounds.Count, 2, 3);
        Assert.Equal(Enumerable.Range(0, 10), rounds.SelectMany(r => r.Items));
        for (var i = 1; i < rounds.Count; i++)
            Assert.True(rounds[i].At - rounds[i - 1].At >= pace - TimeSpan.FromMilliseconds(5), $"rounds {rounds[i - 1].At} and {rounds[i].At}");

        // After a quiet pace, an item goes at once again (not a pace later), alone.
        await Task.Delay(pace * 1.5);
        var quiet = clock.Elapsed;
        commit.Add(10);
        await HttpExtensions.WaitUntilAsync(() =>
        {
            lock (rounds) return Task.FromResult(rounds.Any(r => r.Items.Contains(10)));
        }, what: "the item after the quiet");
        var last = rounds[^1];
        Assert.Equal([10], last.Items);
        Assert.True(last.At - quiet < pace / 2, $"written {last.At - quiet} after it was added");
    }

    [Fact]
    public async Task A_paced_group_commit_does_not_wait_after_a_full_round()
    {
        var rounds = new List<(List<int> Items, TimeSpan At)>();
        var clock = Stopwatch.StartNew();
        var commit = new GroupCommit<int>(batch =>
        {
            lock (rounds) rounds.Add((batch, clock.Elapsed));
            return Task.CompletedTask;
        }, take: queued => queued.Count <= 2 ? (queued, []) : (queued[..2], queued[2..]), pace: TimeSpan.FromSeconds(1));

        for (var i = 0; i < 5; i++) commit.Add(i);
        await HttpExtensions.WaitUntilAsync(() =>
        {
            lock (rounds) return Task.FromResult(rounds.Sum(r => r.Items.Count) == 5);
        }, what: "five items written");

        // [0] at once; [1, 2] a pace later (the first round took all there was); [3, 4] right after the full round.
        Assert.Equal([[0], [1, 2], [3, 4]], rounds.Select(r => r.Items));
        Assert.True(rounds[1].At - rounds[0].At >= TimeSpan.FromMilliseconds(995), $"second round after {rounds[1].At - rounds[0].At}");
        Assert.True(rounds[2].At - rounds[1].At < TimeSpan.FromMilliseconds(500), $"third round {rounds[2].At - rounds[1].At} after the full one");
    }

    [Fact]
    public async Task An_unpaced_group_commit_takes_what_arrived_during_a_write_in_its_next_round()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var rounds = new List<List<int>>();
        var commit = new GroupCommit<int>(async batch =>
        {
            lock (rounds) rounds.Add(batch);
            if (rounds.Count == 1) await release.Task;
        });

        commit.Add(1); // written at once; its write waits
        commit.Add(2);
        commit.Add(3);
        release.SetResult();
        await HttpExtensions.WaitUntilAsync(() =>
        {
            lock (rounds) return Task.FromResult(rounds.Sum(r => r.Count) == 3);
        }, what: "three items written");

        Assert.Equal([[1], [2, 3]], rounds);
    }
}
