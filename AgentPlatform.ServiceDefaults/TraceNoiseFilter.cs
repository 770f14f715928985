using System.Diagnostics;
using OpenTelemetry;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// Keeps background chatter out of the trace list:
/// <list type="bullet">
/// <item>storage-client spans that have no parent: Hangfire polls Postgres on its own connections several times a
/// second, and timers query Redis and Postgres, each call a trace of one span (~1,000 a minute before this);</item>
/// <item>spans under a request the ASP.NET Core filter left out (/health, /alive, /metrics): the filter un-records
/// the request, but the health checks' Postgres and Redis calls below it would still be exported every few seconds,
/// as traces without a root.</item>
/// </list>
/// Storage calls made inside a request or a job keep their spans. A sampler cannot do this: it does not see which
/// ActivitySource a span comes from, nor whether its parent was filtered out.
/// </summary>
public sealed class TraceNoiseFilter : BaseProcessor<Activity>
{
    private static readonly HashSet<string> StorageSources = new(StringComparer.Ordinal)
    {
        "Npgsql",
        "OpenTelemetry.Instrumentation.StackExchangeRedis",
    };

    public override void OnStart(Activity activity)
    {
        var parentLeftOut = activity.Parent is { } parent && (!parent.Recorded || !parent.IsAllDataRequested);
        var lonelyStorageCall = activity.Parent is null && activity.ParentSpanId == default && StorageSources.Contains(activity.Source.Name);
        if (parentLeftOut || lonelyStorageCall)
        {
            activity.IsAllDataRequested = false;
            activity.ActivityTraceFlags &= ~ActivityTraceFlags.Recorded;
        }
    }
}
