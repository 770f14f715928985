using StackExchange.Redis;

namespace AgentPlatform.Engine.Admission;

public readonly record struct RateLimitDecision(bool Allowed, int Limit, int Remaining, TimeSpan Reset);

/// <summary>
/// Per-key requests-per-minute, decided atomically in Redis so any number of Api replicas share
/// one exact limit. A sliding log (one sorted-set entry per admitted request) never admits more
/// than the limit in any 60-second window, unlike a fixed window's double burst at the boundary.
/// Hand-written because System.Threading.RateLimiting's limiters keep their state in-process.
/// </summary>
public sealed class RequestRateLimiter(IConnectionMultiplexer redis)
{
    private static readonly TimeSpan Window = TimeSpan.FromMinutes(1);

    // Redis TIME is the one clock every replica agrees on.
    private static readonly LuaScript Script = LuaScript.Prepare("""
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local window = tonumber(@window)
        local limit = tonumber(@limit)
        redis.call('ZREMRANGEBYSCORE', @key, '-inf', now - window)
        local count = redis.call('ZCARD', @key)
        local allowed = 0
        if count < limit then
          redis.call('ZADD', @key, now, @member)
          redis.call('PEXPIRE', @key, window)
          count = count + 1
          allowed = 1
        end
        local oldest = redis.call('ZRANGE', @key, 0, 0, 'WITHSCORES')
        local reset = window
        if oldest[2] then reset = tonumber(oldest[2]) + window - now end
        return { allowed, limit - count, reset }
        """);

    public async Task<RateLimitDecision> AcquireAsync(Guid keyId, int limit)
    {
        var result = (RedisResult[])(await redis.GetDatabase().ScriptEvaluateAsync(Script, new
        {
            key = (RedisKey)$"ratelimit:requests:{keyId:N}",
            window = (long)Window.TotalMilliseconds,
            limit,
            member = Guid.NewGuid().ToString("N"),
        }))!;
        return new RateLimitDecision((int)result[0] == 1, limit, Math.Max(0, (int)result[1]),
            TimeSpan.FromMilliseconds(Math.Max(0, (long)result[2])));
    }
}
