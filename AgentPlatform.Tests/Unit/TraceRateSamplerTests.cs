using System.Diagnostics;
using Microsoft.Extensions.Hosting;
using OpenTelemetry.Trace;

namespace AgentPlatform.Tests.Unit;

public sealed class TraceRateSamplerTests
{
    private static SamplingDecision Decide(Sampler sampler) =>
        sampler.ShouldSample(new SamplingParameters(default, ActivityTraceId.CreateRandom(), "request", ActivityKind.Server)).Decision;

    [Fact]
    public void Every_trace_is_kept_up_to_the_rate_and_the_rest_of_that_second_is_dropped()
    {
        var sampler = new TraceRateSampler(50);
        // Inside one second (retried if the burst straddles a second boundary).
        for (var attempt = 0; ; attempt++)
        {
            var second = Environment.TickCount64 / 1000;
            var decisions = Enumerable.Range(0, 200).Select(_ => Decide(sampler)).ToList();
            if (Environment.TickCount64 / 1000 != second && attempt < 5) continue;
            Assert.Equal(50, decisions.Count(d => d == SamplingDecision.RecordAndSample));
            Assert.All(decisions.Take(50), d => Assert.Equal(SamplingDecision.RecordAndSample, d));
            break;
        }
    }

    [Fact]
    public async Task The_next_second_keeps_traces_again()
    {
        var sampler = new TraceRateSampler(1);
        Decide(sampler);
        Assert.Equal(SamplingDecision.Drop, Decide(sampler));
        await Task.Delay(1100);
        Assert.Equal(SamplingDecision.RecordAndSample, Decide(sampler));
    }

    [Fact]
    public void A_sampled_parent_keeps_its_children_whatever_the_rate()
    {
        var sampler = new ParentBasedSampler(new TraceRateSampler(0));
        var parent = new ActivityContext(ActivityTraceId.CreateRandom(), ActivitySpanId.CreateRandom(), ActivityTraceFlags.Recorded, isRemote: true);
        var child = sampler.ShouldSample(new SamplingParameters(parent, parent.TraceId, "agent.task", ActivityKind.Consumer));
        Assert.Equal(SamplingDecision.RecordAndSample, child.Decision);
        Assert.Equal(SamplingDecision.Drop, Decide(sampler));
    }
}
