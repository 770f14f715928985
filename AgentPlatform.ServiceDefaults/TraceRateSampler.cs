using OpenTelemetry.Trace;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// Head sampling by rate: every trace while fewer than <c>Telemetry:MaxTracesPerSecond</c> start in a second (so a developer, a
/// test or a normal day sees all of them), and that many per second under a load beyond it. Spans of a sampled trace are all
/// kept (the parent decides, also across the Api→Worker hop); metrics count every request whatever is sampled. Without it,
/// each request's half a dozen spans cost the Api and the dashboard more CPU than the request itself at gateway rates.
/// Hand-written: OpenTelemetry .NET ships ratio samplers only, and a ratio either floods at load or starves a quiet service.
/// </summary>
public sealed class TraceRateSampler(int perSecond) : Sampler
{
    private static readonly SamplingResult Sampled = new(SamplingDecision.RecordAndSample);
    private static readonly SamplingResult Dropped = new(SamplingDecision.Drop);
    private long _second;
    private int _count;

    public override SamplingResult ShouldSample(in SamplingParameters samplingParameters)
    {
        var second = Environment.TickCount64 / 1000;
        if (Interlocked.Read(ref _second) != second && Interlocked.Exchange(ref _second, second) != second)
            Interlocked.Exchange(ref _count, 0);
        return Interlocked.Increment(ref _count) <= perSecond ? Sampled : Dropped;
    }
}
