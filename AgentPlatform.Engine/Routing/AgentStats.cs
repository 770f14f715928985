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
/// </summary>
public sealed class AgentStats(IConnectionMultiplexer redis, IOptionsMonitor<RouterOptions> options, ILogger<AgentStats> logger)
{
    private string SuccessKey => options.CurrentValue.StatsNamespace + ":ema:success";
    private string LatencyKey => options.CurrentValue.StatsNamespace + ":ema:latency_ms";
    private string FeedbackKey(Guid apiKeyId) => options.CurrentValue.StatsNamespace + ":ema:feedback:" + apiKeyId.ToString("N");

    // One round trip updates the success EMA and, when given (latency >= 0), the latency EMA.
    private static readonly LuaScript Update = LuaScript.Prepare("""
        local alpha = tonumber(@alpha)
        local function ema(key, value)
          local current = redis.call('HGET', key, @agent)
          local next = value
          if current then next = alpha * value + (1 - alpha) * tonumber(current) end
          redis.call('HSET', key, @agent, tostring(next))
        end
        ema(@successKey, tonumber(@outcome))
        if tonumber(@latency) >= 0 then ema(@latencyKey, tonumber(@latency)) end
        return 1
        """);

    private volatile Dictionary<string, AgentTrackRecord> _cache = new(StringComparer.OrdinalIgnoreCase);
    private DateTimeOffset _cachedAt = DateTimeOffset.MinValue;

    private readonly ConcurrentDictionary<Guid, (DateTimeOffset At, Dictionary<string, double> Ratings)> _feedbackCache = new();

    public Task RecordOutcomeAsync(string agent, bool success, TimeSpan? latency) =>
        RecordAsync(SuccessKey, agent, success ? 1.0 : 0.0, latency);

    /// <summary>A key's rating of an agent's answer: moves that key's feedback EMA only.</summary>
    public async Task RecordFeedbackAsync(Guid apiKeyId, string agent, int rating)
    {
        await RecordAsync(FeedbackKey(apiKeyId), agent, (rating - 1) / 4.0, null);
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

    private async Task RecordAsync(string successKey, string agent, double outcome, TimeSpan? latency)
    {
        var alpha = options.CurrentValue.EmaAlpha;
        try
        {
            // Invalidated when the update is sent (a read sent after it is run after it) and again when it is done (a read
            // sent before it may have refilled the cache with the older figures meanwhile).
            _cachedAt = DateTimeOffset.MinValue;
            await redis.GetDatabase().ScriptEvaluateAsync(Update, new
            {
                successKey = (RedisKey)successKey,
                latencyKey = (RedisKey)LatencyKey,
                agent,
                alpha,
                outcome,
                latency = latency?.TotalMilliseconds ?? -1,
            });
            _cachedAt = DateTimeOffset.MinValue;
        }
        catch (RedisException e)
        {
            logger.LogWarning(e, "Could not record the outcome of agent {Agent}", agent);
        }
    }

    public async Task<IReadOnlyDictionary<string, AgentTrackRecord>> ReadAsync()
    {
        if (DateTimeOffset.UtcNow - _cachedAt < options.CurrentValue.StatsCacheDuration) return _cache;
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
        return _cache;
    }
}
