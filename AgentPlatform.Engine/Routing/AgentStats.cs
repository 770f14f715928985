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

    private static readonly LuaScript Update = LuaScript.Prepare("""
        local current = redis.call('HGET', @key, @agent)
        local alpha = tonumber(@alpha)
        local value = tonumber(@value)
        local next = value
        if current then next = alpha * value + (1 - alpha) * tonumber(current) end
        redis.call('HSET', @key, @agent, tostring(next))
        return tostring(next)
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
            var db = redis.GetDatabase();
            var updates = new List<Task> { db.ScriptEvaluateAsync(Update, new { key = (RedisKey)SuccessKey, agent, alpha, value = outcome }) };
            if (latency is { } l)
                updates.Add(db.ScriptEvaluateAsync(Update, new { key = (RedisKey)LatencyKey, agent, alpha, value = l.TotalMilliseconds }));
            await Task.WhenAll(updates);
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
