using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AgentPlatform.Engine.Infrastructure;

/// <summary>
/// Gives the memory of a burst back to the system once the process is idle (<c>Runtime:TrimMemoryWhenIdle</c>, on by
/// default). After a load run the GC kept ~350 MB committed for ~100 MB of live objects, and an idle process allocates too
/// little to collect again, so it held that for good (bench/gateway.sh prints the RSS after the load and after a pause).
/// Written here because no setting does it: <c>GCConserveMemory</c>, heap limits and gen0 budgets were measured without
/// effect on it (README, Performance). One aggressive collection (blocking, compacting, decommitting what it frees) runs
/// when, since the last one, at least <see cref="BurstBytes"/> were allocated, and then a whole
/// <see cref="Interval"/> passed with less than <see cref="IdleBytes"/> allocated: a pause of tens of milliseconds, once
/// per burst, when nobody is waiting on the process.
/// </summary>
public sealed class IdleMemoryTrim(IConfiguration configuration, ILogger<IdleMemoryTrim> logger) : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);
    public const long BurstBytes = 256L << 20;
    public const long IdleBytes = 4L << 20;

    /// <summary>Whether to collect now, from the bytes allocated since the last trim and during the last interval.</summary>
    public static bool ShouldTrim(long allocatedSinceTrim, long allocatedInInterval) =>
        allocatedSinceTrim >= BurstBytes && allocatedInInterval < IdleBytes;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!configuration.GetValue("Runtime:TrimMemoryWhenIdle", true)) return;
        using var timer = new PeriodicTimer(Interval);
        var (atTrim, atTick) = (GC.GetTotalAllocatedBytes(), GC.GetTotalAllocatedBytes());
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            var now = GC.GetTotalAllocatedBytes();
            if (ShouldTrim(now - atTrim, now - atTick))
            {
                var before = GC.GetGCMemoryInfo().TotalCommittedBytes;
                GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
                logger.LogDebug("Idle after a burst: GC committed memory {Before} → {After} MB", before >> 20,
                    GC.GetGCMemoryInfo().TotalCommittedBytes >> 20);
                now = GC.GetTotalAllocatedBytes();
                atTrim = now;
            }
            atTick = now;
        }
    }
}
