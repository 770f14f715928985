using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace AgentPlatform.Engine.Routing;

/// <summary>What the router knows of an agent's track record.</summary>
public readonly record struct AgentTrackRecord(double SuccessRate, double? LatencyMs);

/// <summary>
/// Exponential moving averages of each agent's outcomes (success 1, failure 0) and latency, shared by
/// every replica in Redis and updated atomically there. Feedback ratings (r as (r-1)/4) go to a
/// separate EMA per API key: a rating is one tenant's opinion, so it moves only that key's routing
/// (<see cref="AgentRouter"/> blends it over the global record); outcomes are facts and stay global.
/// Otherwise one tenant posting bad ratings could steer every other tenant away from an agent.
/// Reads are cached for <see cref="RouterOptions.StatsCacheDuration"/>; a Redis outage leaves the
/// router on its last known figures instead of failing requests.
/// Outcomes are folded in process and written every <see cref="RouterOptions.StatsFlushInterval"/> (and before a read,
/// so this process reads its own outcomes): one Redis call per agent and interval instead of one per run.
/// </summary>
public sealed class AgentStats(IConnectionMultiplexer redis, IOptionsMonitor<RouterOptions> options, ILogger<AgentStats> logger)
    : IAsyncDisposable
{
    private string SuccessKey => options.CurrentValue.StatsNamespace + ":ema:success";
    private string LatencyKey => options.CurrentValue.StatsNamespace + ":ema:latency_ms";
    private string FeedbackKey(Guid apiKeyId) => options.CurrentValue.StatsNamespace + ":ema:feedback:" + apiKeyId.ToString("N");

    // Applies folded observations (see Ema) to the success and, when any were timed, the latency EMA of one agent:
    // next = decay * current + sum, with the first observation standing in for a current value the hash lacks.
    private static readonly LuaScript Update = LuaScript.Prepare("""
        local function apply(key, decay, sum, first)
          local current = redis.call('HGET', key, @agent)
          local base = tonumber(first)
          if current then base = tonumber(current) end
          redis.call('HSET', key, @agent, tostring(tonumber(decay) * base + tonumber(sum)))
        end
        apply(@successKey, @successDecay, @successSum, @successFirst)
        if tonumber(@latencyCount) > 0 then apply(@latencyKey, @latencyDecay, @latencySum, @latencyFirst) end
        return 1
        """);

    private volatile Dictionary<string, AgentTrackRecord> _cache = new(StringComparer.OrdinalIgnoreCase);
    private DateTimeOffset _cachedAt = DateTimeOffset.MinValue;

    private readonly ConcurrentDictionary<Guid, (DateTimeOffset At, Dictionary<string, double> Ratings)> _feedbackCache = new();

    private readonly Lock _gate = new();
    private Dictionary<string, (Ema Success, Ema Latency)> _pending = new(StringComparer.OrdinalIgnoreCase);
    private Timer? _flushTimer;

    /// <summary>
    /// Observations v1..vk folded so that applying them one by one to an EMA c (c ← α·v + (1−α)·c) equals
    /// Decay·c + Sum with Decay = (1−α)^k and Sum = Σ α(1−α)^(k−i)·v_i; an EMA without a value starts at v1, which is
    /// the same as taking c = v1. Exact, so writing every interval changes no figure against writing every run.
    /// </summary>
    private readonly record struct Ema(int Count, double Decay, double Sum, double First)
    {
        public static readonly Ema None = new(0, 1, 0, 0);
        public Ema Add(double value, double alpha) =>
            new(Count + 1, Decay * (1 - alpha), (1 - alpha) * Sum + alpha * value, Count == 0 ? value : First);
    }

    /// <summary>
    /// Records an agent run's outcome; written to Redis within <see cref="RouterOptions.StatsFlushInterval"/>.
    /// The router's track record is a trend, so a run's answer never waits for it.
    /// </summary>
    public void RecordOutcome(string agent, bool success, TimeSpan? latency)
    {
        var alpha = options.CurrentValue.EmaAlpha;
        lock (_gate)
        {
            var (ok, ms) = _pending.GetValueOrDefault(agent, (Ema.None, Ema.None));
            _pending[agent] = (ok.Add(success ? 1.0 : 0.0, alpha), latency is { } l ? ms.Add(l.TotalMilliseconds, alpha) : ms);
            _flushTimer ??= new Timer(static s => ((AgentStats)s!).FlushInBackground(), this, options.CurrentValue.StatsFlushInterval,
                options.CurrentValue.StatsFlushInterval);
        }
    }

    private void FlushInBackground() => _ = FlushAsync();

    /// <summary>Writes the outcomes folded since the last flush: one script per agent, sent together (pipelined).</summary>
    public async Task FlushAsync()
    {
        Dictionary<string, (Ema Success, Ema Latency)> pending;
        lock (_gate)
        {
            if (_pending.Count == 0) return;
            (pending, _pending) = (_pending, new(StringComparer.OrdinalIgnoreCase));
        }
        // Invalidated when the updates are sent (a read sent after them is run after them) and again when they are done (a
        // read sent before them may have refilled the cache with the older figures meanwhile).
        _cachedAt = DateTimeOffset.MinValue;
        try
        {
            await Task.WhenAll(pending.Select(p => UpdateAsync(SuccessKey, p.Key, p.Value.Success, p.Value.Latency)));
        }
        catch (Exception e) when (e is RedisException or ObjectDisposedException)
        {
            // A trend, not an account: the outcomes of one interval are given up rather than retried.
            logger.LogWarning(e, "Could not record the outcomes of {Count} agents", pending.Count);
        }
        _cachedAt = DateTimeOffset.MinValue;
    }

    /// <summary>Applies folded observations to one agent's EMA in <paramref name="key"/> and, if any were timed, its latency EMA.</summary>
    private Task<RedisResult> UpdateAsync(string key, string agent, Ema outcome, Ema latency) =>
        redis.GetDatabase().ScriptEvaluateAsync(Update, new
        {
            successKey = (RedisKey)key,
            latencyKey = (RedisKey)LatencyKey,
            agent,
            successDecay = outcome.Decay,
            successSum = outcome.Sum,
            successFirst = outcome.First,
            latencyCount = latency.Count,
            latencyDecay = latency.Decay,
            latencySum = latency.Sum,
            latencyFirst = latency.First,
        });

    /// <summary>Writes what is still folded (shutdown).</summary>
    public async ValueTask DisposeAsync()
    {
        if (_flushTimer is not null) await _flushTimer.DisposeAsync();
        await FlushAsync();
    }

    /// <summary>A key's rating of an agent's answer: moves that key's feedback EMA only.</summary>
    public async Task RecordFeedbackAsync(Guid apiKeyId, string agent, int rating)
    {
        try
        {
            await UpdateAsync(FeedbackKey(apiKeyId), agent, Ema.None.Add((rating - 1) / 4.0, options.CurrentValue.EmaAlpha), Ema.None);
        }
        catch (RedisException e)
        {
            logger.LogWarning(e, "Could not record a rating of agent {Agent}", agent);
        }
        _feedbackCache.TryRemove(apiKeyId, out _);
    }

    /// <summary>The key's feedback EMA per agent (0 worst, 1 best); agents it never rated are absent.</summary>
    public async Task<IReadOnlyDictionary<string, double>> ReadFeedbackAsync(Guid apiKeyId)
    {
        if (_feedbackCache.TryGetValue(apiKeyId, out var cached) && DateTimeOffset.UtcNow - cached.At < options.CurrentValue.StatsCacheDuration)
            return cached.Ratings;
        try
        {
            var ratings = (await redis.GetDatabase().HashGetAllAsync(FeedbackKey(apiKeyId)))
                .ToDictionary(e => (string)e.Name!, e => (double)e.Value, StringComparer.OrdinalIgnoreCase);
            // Bounded: a flood of distinct keys costs a cache reset, not memory.
            if (_feedbackCache.Count > 10_000) _feedbackCache.Clear();
            _feedbackCache[apiKeyId] = (DateTimeOffset.UtcNow, ratings);
            return ratings;
        }
        catch (RedisException e)
        {
            logger.LogWarning(e, "Feedback of key {ApiKeyId} unavailable; routing on the global record", apiKeyId);
            return cached.Ratings ?? new Dictionary<string, double>();
        }
    }

    public async Task<IReadOnlyDictionary<string, AgentTrackRecord>> ReadAsync()
    {
        if (DateTimeOffset.UtcNow - _cachedAt < options.CurrentValue.StatsCacheDuration) return _cache;
        // This process's own outcomes first: sent before the reads, so the reads see them.
        var flushed = FlushAsync();
        try
        {
            var db = redis.GetDatabase();
            var success = db.HashGetAllAsync(SuccessKey);
            var latency = db.HashGetAllAsync(LatencyKey);
            var latencies = (await latency).ToDictionary(e => (string)e.Name!, e => (double)e.Value, StringComparer.OrdinalIgnoreCase);
            _cache = (await success).ToDictionary(e => (string)e.Name!, e => new AgentTrackRecord((double)e.Value,
                latencies.TryGetValue(e.Name!, out var ms) ? ms : null), StringComparer.OrdinalIgnoreCase);
            _cachedAt = DateTimeOffset.UtcNow;
        }
        catch (RedisException e)
        {
            logger.LogWarning(e, "Agent statistics unavailable; routing on the last known figures");
        }
        await flushed;
        return _cache;
    }
}
