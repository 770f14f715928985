using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace AgentPlatform.Engine.Routing;

/// <summary>What the router knows of an agent's track record.</summary>
public readonly record struct AgentTrackRecord(double SuccessRate, double? LatencyMs);

/// <summary>
/// Exponential moving averages of each agent's outcomes (success 1, failure 0, a feedback rating
/// r as (r-1)/4) and latency, shared by every replica in Redis and updated atomically there.
/// Reads are cached for <see cref="RouterOptions.StatsCacheDuration"/>; a Redis outage leaves the
/// router on its last known figures instead of failing requests.
/// </summary>
public sealed class AgentStats(IConnectionMultiplexer redis, IOptionsMonitor<RouterOptions> options, ILogger<AgentStats> logger)
{
    private string SuccessKey => options.CurrentValue.StatsNamespace + ":ema:success";
    private string LatencyKey => options.CurrentValue.StatsNamespace + ":ema:latency_ms";

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

    public Task RecordOutcomeAsync(string agent, bool success, TimeSpan? latency) =>
        RecordAsync(agent, success ? 1.0 : 0.0, latency);

    public Task RecordFeedbackAsync(string agent, int rating) => RecordAsync(agent, (rating - 1) / 4.0, null);

    private async Task RecordAsync(string agent, double outcome, TimeSpan? latency)
    {
        var alpha = options.CurrentValue.EmaAlpha;
        try
        {
            await redis.GetDatabase().ScriptEvaluateAsync(Update, new
            {
                successKey = (RedisKey)SuccessKey,
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
