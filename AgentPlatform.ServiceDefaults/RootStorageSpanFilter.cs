using System.Diagnostics;
using OpenTelemetry;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// Drops storage-client spans that have no parent: Hangfire polls Postgres on its own connections several
/// times a second, and timers (queue depth, heartbeats) query Redis and Postgres, each call a trace of one
/// span. Without this the dashboard's trace list holds ~1,000 such traces a minute and buries the requests.
/// Storage calls made inside a request or a job keep their spans. A sampler cannot do this: it does not
/// see which ActivitySource a span comes from.
/// </summary>
public sealed class RootStorageSpanFilter : BaseProcessor<Activity>
{
    private static readonly HashSet<string> StorageSources = new(StringComparer.Ordinal)
    {
        "Npgsql",
        "OpenTelemetry.Instrumentation.StackExchangeRedis",
    };

    public override void OnStart(Activity activity)
    {
        if (activity.Parent is null && activity.ParentSpanId == default && StorageSources.Contains(activity.Source.Name))
        {
            activity.IsAllDataRequested = false;
            activity.ActivityTraceFlags &= ~ActivityTraceFlags.Recorded;
        }
    }
}
