using System.Collections.Concurrent;
using AgentPlatform.Engine.Telemetry;
using Microsoft.Extensions.Options;
using Polly;
using Polly.CircuitBreaker;
using Polly.Registry;

namespace AgentPlatform.Engine.Llm;

/// <summary>Identifies one breaker: an agent's use of one model at one provider.</summary>
public readonly record struct BreakerKey(string Agent, string Provider, string Model);

/// <summary>
/// One Polly circuit breaker per (agent, provider, model), kept across agent changes, plus the
/// figures /agents/{name}/health shows. Polly's breaker is ratio based; failure ratio 1.0 with
/// a minimum throughput of FailureThreshold makes it open after that many failures in a row
/// within SamplingDuration (a success inside the window keeps it closed).
/// State is per process: each replica learns on its own, which is what a breaker needs to react fast.
/// </summary>
public sealed class CircuitBreakers : IDisposable
{
    private readonly ResiliencePipelineRegistry<BreakerKey> _registry = new();
    private readonly ConcurrentDictionary<BreakerKey, ModelBreaker> _breakers = new();
    private readonly IOptionsMonitor<LlmOptions> _options;
    private readonly TimeProvider _time;

    public CircuitBreakers(IOptionsMonitor<LlmOptions> options, TimeProvider time)
    {
        _options = options;
        _time = time;
        PlatformTelemetry.Meter.CreateObservableGauge("circuit_breaker_state", () => _breakers.Values.Select(b =>
                new System.Diagnostics.Metrics.Measurement<int>((int)b.EffectiveState,
                    new KeyValuePair<string, object?>("agent", b.Key.Agent),
                    new KeyValuePair<string, object?>("model", $"{b.Key.Provider}/{b.Key.Model}"))),
            description: "0 closed, 1 open, 2 half-open, 3 isolated");
    }

    public ModelBreaker For(BreakerKey key) => _breakers.GetOrAdd(key, Create);

    public IEnumerable<ModelBreaker> ForAgent(string agent) =>
        _breakers.Values.Where(b => string.Equals(b.Key.Agent, agent, StringComparison.OrdinalIgnoreCase));

    private ModelBreaker Create(BreakerKey key)
    {
        var settings = _options.CurrentValue.CircuitBreaker;
        var state = new CircuitBreakerStateProvider();
        var breaker = new ModelBreaker(key, state, _time, settings.BreakDuration);
        breaker.Pipeline = _registry.GetOrAddPipeline(key, builder => builder.AddCircuitBreaker(new CircuitBreakerStrategyOptions
        {
            FailureRatio = 1.0,
            MinimumThroughput = settings.FailureThreshold,
            SamplingDuration = settings.SamplingDuration,
            BreakDuration = settings.BreakDuration,
            StateProvider = state,
            ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is { } e
                && ProviderFailures.CountsAgainstBreaker(e, args.Context.CancellationToken)),
            OnOpened = _ =>
            {
                breaker.OpenedAt = _time.GetUtcNow();
                return ValueTask.CompletedTask;
            },
        }));
        return breaker;
    }

    public void Dispose() => _registry.Dispose();
}

/// <summary>A breaker with the numbers an operator wants: success rate, p95 latency, last error.</summary>
public sealed class ModelBreaker(BreakerKey key, CircuitBreakerStateProvider state, TimeProvider time, TimeSpan breakDuration)
{
    private readonly Queue<double> _latencies = new();
    private long _successes;
    private long _failures;

    public BreakerKey Key { get; } = key;
    public ResiliencePipeline Pipeline { get; internal set; } = ResiliencePipeline.Empty;
    public CircuitState State => state.CircuitState;

    /// <summary>
    /// Polly moves an open breaker to half-open only when the next call arrives; once the break is
    /// over this reports half-open, so nobody avoids a model that is ready for its probe.
    /// </summary>
    public CircuitState EffectiveState => State == CircuitState.Open && RetryAfter == TimeSpan.Zero ? CircuitState.HalfOpen : State;
    public DateTimeOffset? OpenedAt { get; internal set; }
    public string? LastError { get; private set; }
    public DateTimeOffset? LastErrorAt { get; private set; }

    /// <summary>How long until an open breaker lets a probe through (zero when not open).</summary>
    public TimeSpan RetryAfter => State == CircuitState.Open && OpenedAt is { } opened
        ? TimeSpan.FromTicks(Math.Max(0, (opened + breakDuration - time.GetUtcNow()).Ticks))
        : TimeSpan.Zero;

    public double? SuccessRate => _successes + _failures == 0 ? null : (double)_successes / (_successes + _failures);
    public long Calls => _successes + _failures;

    public double? P95LatencyMs
    {
        get
        {
            lock (_latencies)
            {
                if (_latencies.Count == 0) return null;
                var sorted = _latencies.Order().ToArray();
                return sorted[(int)Math.Ceiling(0.95 * sorted.Length) - 1];
            }
        }
    }

    public void RecordSuccess(TimeSpan latency)
    {
        Interlocked.Increment(ref _successes);
        lock (_latencies)
        {
            _latencies.Enqueue(latency.TotalMilliseconds);
            if (_latencies.Count > 200) _latencies.Dequeue();
        }
    }

    public void RecordFailure(string error)
    {
        Interlocked.Increment(ref _failures);
        LastError = error;
        LastErrorAt = time.GetUtcNow();
    }
}
