using StackExchange.Redis;

namespace AgentPlatform.Engine.Admission;

/// <summary>A per-key requests-per-minute limit to check and count.</summary>
public sealed record RequestCheck(Guid KeyId, int Limit);

/// <summary>
/// Admission in one Redis round trip. One script checks, in order, and stops at the first that decides:
/// <list type="number">
/// <item>the key's requests per minute — a sliding log (one sorted-set entry per admitted request) that never admits more
/// than the limit in any 60-second window; the request counts whatever follows (a cache hit, a refusal for tokens);</item>
/// <item>the exact response cache — a hit is the answer, counted, and reserves nothing;</item>
/// <item>the token and budget reservations — see <see cref="SpendGate"/>: tokens per minute in per-second buckets, the key's
/// daily budget and each capped agent's, with reservations that expire; or "seed" when a budget counter Redis lost must be
/// rebuilt first (the caller rebuilds it and asks again, without the request part).</item>
/// </list>
/// Each part is optional. Redis runs a script atomically, so every Api replica and Worker sees one exact state, and
/// <c>TIME</c> inside the script is the one clock they agree on. Hand-written because ASP.NET Core's rate limiters keep
/// their state in-process and know nothing of tokens, cost or the cache.
/// </summary>
public static class AdmissionScript
{
    public static readonly TimeSpan RequestWindow = TimeSpan.FromMinutes(1);

    /// <summary>What the script decided (its first result).</summary>
    public enum Outcome
    {
        /// <summary>A token limit or budget refused the run: kind, retry ms, tokens remaining follow.</summary>
        SpendRefused = 0,
        /// <summary>Tokens and budgets reserved: bucket, tokens remaining, budget share (per mille, -1 none) follow.</summary>
        Reserved = 1,
        /// <summary>A budget counter is missing: the 1-based index of its hash follows.</summary>
        Seed = 2,
        /// <summary>The request limit refused the request.</summary>
        RequestRefused = 3,
        /// <summary>The exact cache holds the answer: its JSON follows.</summary>
        CacheHit = 4,
        /// <summary>Admitted, with nothing to reserve.</summary>
        Admitted = 5,
    }

    // KEYS: request log ('' none), cache entry ('' none), then the spend keys: tokens hash, key budget hash, key reservations
    //       zset, then per capped agent: budget hash, reservations zset.
    // ARGV: request limit (0 none), request member, request window ms, reserve (1/0), then the spend arguments: tpm limit
    //       (0 none), tokens, key budget nanos (-1 none), cost nanos, reservation id, reservation ttl ms, day ttl s, then per
    //       capped agent: cap nanos.
    // Returns {outcome, requests remaining (-1 no limit), request reset ms, ...} as Outcome says.
    // Note "0 - x" rather than "-x": Lua formats -0 as "-0", which HINCRBY refuses.
    private const string Lua = """
        local t = redis.call('TIME')
        local sec = tonumber(t[1])
        local nowms = sec * 1000 + math.floor(tonumber(t[2]) / 1000)

        local rlimit, rleft, rreset = tonumber(ARGV[1]), -1, -1
        if rlimit > 0 then
          local window = tonumber(ARGV[3])
          redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', nowms - window)
          local count = redis.call('ZCARD', KEYS[1])
          local allowed = count < rlimit
          if allowed then
            redis.call('ZADD', KEYS[1], nowms, ARGV[2])
            redis.call('PEXPIRE', KEYS[1], window)
            count = count + 1
          end
          local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
          rreset = window
          if oldest[2] then rreset = tonumber(oldest[2]) + window - nowms end
          rleft = rlimit - count
          if not allowed then return { 3, rleft, rreset } end
        end

        if KEYS[2] ~= '' then
          local answer = redis.call('HGET', KEYS[2], 'answer')
          if answer then
            redis.call('HINCRBY', KEYS[2], 'hits', 1)
            return { 4, rleft, rreset, answer }
          end
        end

        if ARGV[4] ~= '1' then return { 5, rleft, rreset } end

        local K, A = {}, {}
        for i = 3, #KEYS do K[#K + 1] = KEYS[i] end
        for i = 5, #ARGV do A[#A + 1] = ARGV[i] end
        local tpm, tokens = tonumber(A[1]), tonumber(A[2])
        local cost, id, resttl, dayttl = tonumber(A[4]), A[5], tonumber(A[6]), tonumber(A[7])
        local budgets = { { K[2], K[3], tonumber(A[3]) } }
        for i = 8, #A do table.insert(budgets, { K[2 * (i - 7) + 2], K[2 * (i - 7) + 3], tonumber(A[i]) }) end

        local used, buckets = 0, {}
        if tpm > 0 then
          local fields = redis.call('HGETALL', K[1])
          local old = {}
          for i = 1, #fields, 2 do
            local s, v = tonumber(fields[i]), tonumber(fields[i + 1])
            if s <= sec - 60 then table.insert(old, fields[i]) else used = used + v; table.insert(buckets, { s, v }) end
          end
          if #old > 0 then redis.call('HDEL', K[1], unpack(old)) end
          if used + tokens > tpm then
            local retry = -1
            if tokens <= tpm then
              table.sort(buckets, function(a, b) return a[1] < b[1] end)
              local freed = 0
              for _, b in ipairs(buckets) do
                freed = freed + b[2]
                if used - freed + tokens <= tpm then retry = (b[1] + 60 - sec) * 1000; break end
              end
            end
            return { 0, rleft, rreset, 'tokens', retry, tpm - used }
          end
        end

        for i, b in ipairs(budgets) do
          if b[3] >= 0 then
            if redis.call('HEXISTS', b[1], 'spent') == 0 then return { 2, rleft, rreset, i } end
            local expired = redis.call('ZRANGEBYSCORE', b[2], '-inf', nowms)
            for _, rid in ipairs(expired) do
              local a = redis.call('HGET', b[1], 'r:' .. rid)
              if a then redis.call('HINCRBY', b[1], 'reserved', 0 - tonumber(a)); redis.call('HDEL', b[1], 'r:' .. rid) end
            end
            if #expired > 0 then redis.call('ZREMRANGEBYSCORE', b[2], '-inf', nowms) end
            local spent = tonumber(redis.call('HGET', b[1], 'spent'))
            local reserved = tonumber(redis.call('HGET', b[1], 'reserved') or '0')
            if spent + reserved + cost > b[3] then
              return { 0, rleft, rreset, i == 1 and 'budget' or 'agent_budget:' .. (i - 1), -1, tpm - used }
            end
          end
        end

        if tpm > 0 then
          redis.call('HINCRBY', K[1], sec, tokens)
          redis.call('EXPIRE', K[1], 120)
        end
        for _, b in ipairs(budgets) do
          if b[3] >= 0 then
            redis.call('HINCRBY', b[1], 'reserved', cost)
            redis.call('HSET', b[1], 'r:' .. id, cost)
            redis.call('ZADD', b[2], nowms + resttl, id)
            redis.call('EXPIRE', b[1], dayttl)
            redis.call('EXPIRE', b[2], dayttl)
          end
        end
        local share = -1
        if budgets[1][3] > 0 then share = math.floor(tonumber(redis.call('HGET', K[2], 'spent')) * 1000 / budgets[1][3]) end
        return { 1, rleft, rreset, sec, tpm - used - tokens, share }
        """;

    /// <summary>What one evaluation returned.</summary>
    public sealed record Result(Outcome Outcome, RateLimitDecision? Requests, RedisResult[] Values)
    {
        /// <summary>The value at <paramref name="index"/> after the outcome and the request figures (0-based).</summary>
        public RedisResult this[int index] => Values[3 + index];
    }

    /// <summary>Runs the script: any of the request check, the cache entry read and the reservation (spend keys and arguments).</summary>
    public static async Task<Result> EvaluateAsync(IDatabaseAsync redis, RequestCheck? requests, RedisKey? cacheEntry,
        RedisKey[]? spendKeys = null, RedisValue[]? spendArgs = null)
    {
        RedisKey[] keys =
        [
            requests is null ? "" : RequestLogKey(requests.KeyId), cacheEntry ?? "", .. spendKeys ?? [],
        ];
        RedisValue[] args =
        [
            requests?.Limit ?? 0, requests is null ? "" : Guid.NewGuid().ToString("N"), (long)RequestWindow.TotalMilliseconds,
            spendArgs is null ? 0 : 1, .. spendArgs ?? [],
        ];
        var values = (RedisResult[])(await redis.ScriptEvaluateAsync(Lua, keys, args))!;
        var outcome = (Outcome)(int)values[0];
        var decision = requests is null
            ? (RateLimitDecision?)null
            : new RateLimitDecision(outcome != Outcome.RequestRefused, requests.Limit, Math.Max(0, (int)values[1]),
                TimeSpan.FromMilliseconds(Math.Max(0, (long)values[2])));
        return new Result(outcome, decision, values);
    }

    private static RedisKey RequestLogKey(Guid keyId) => $"ratelimit:requests:{keyId:N}";
}
