using System.Diagnostics;
using System.Diagnostics.Metrics;
using AgentPlatform.Engine.Telemetry;

namespace AgentPlatform.Engine.Tools;

/// <summary>Tool call metrics on the platform's meter (spans are started by <see cref="GuardedTool"/>).</summary>
internal static class ToolTelemetry
{
    private static readonly Histogram<double> CallDuration =
        PlatformTelemetry.Meter.CreateHistogram<double>("agent_tool_call_duration", unit: "s", description: "Tool call duration by tool and outcome",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] });

    public static void Record(string tool, string outcome, TimeSpan duration) =>
        CallDuration.Record(duration.TotalSeconds, new TagList { { "tool", tool }, { "outcome", outcome } });
}
