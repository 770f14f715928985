using System.Globalization;
using AgentPlatform.Engine.Agents;
using AgentPlatform.Engine.Conversations;
using AgentPlatform.Engine.Execution;
using AgentPlatform.Engine.Llm;
using AgentPlatform.Engine.Routing;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace AgentPlatform.Engine.Admission;

/// <summary>What a key may spend: its tier, and the key's own overrides of the tier's limits.</summary>
public sealed record SpendAccount(string Tier, int? TokensPerMinute, decimal? DailyBudgetUsd);

/// <summary>The limits that apply to one run, resolved from the tier, the key and the agents.</summary>
public sealed record SpendLimits(int? TokensPerMinute, decimal? KeyDailyBudgetUsd, IReadOnlyList<(string Agent, decimal Cap)> AgentCaps)
{
    public bool Any => TokensPerMinute is > 0 || KeyDailyBudgetUsd is not null || AgentCaps.Count > 0;
}

/// <summary>The estimate a run is admitted on: prompt plus reply budget, and their price on the dearest model of each chain.</summary>
public sealed record SpendEstimate(long Tokens, decimal CostUsd);

/// <summary>What a run holds until it settles: token and budget reservations, to be corrected to the real usage.</summary>
/// <param name="BudgetShare">The share of the key's daily budget already spent when the run was admitted (0–1+); null without a budget.</param>
public sealed record SpendReservation(Guid Id, Guid KeyId, string Day, long Tokens, long TokenBucket, long CostNanos,
    IReadOnlyList<string> Agents, SpendLimits Limits, double? BudgetShare = null);

/// <summary>Why a run was refused: <see cref="Kind"/> is tokens, budget or agent_budget (or unavailable when Redis is down).</summary>
public sealed record SpendRefusal(string Kind, string Message, TimeSpan RetryAfter, int Status = 429, long? TokenLimit = null,
    long? TokensRemaining = null);

/// <summary>
/// Token-per-minute limits and daily budgets, decided atomically in Redis so any number of Api replicas and Workers share
/// them. Before a run: one script checks and reserves the estimated tokens (a 60-second window of per-second buckets)
/// and the estimated cost against the key's budget and each agent's cap; after it, one script settles the reservation
/// to the real usage. Concurrent runs therefore see each other's reservations: the budget is overshot by at most what
/// runs spend beyond their own reservation (a tool loop's extra calls), never by a race. Reservations of a run that died
/// expire. A budget counter Redis lost (a restart) is rebuilt from today's recorded spend before anything is admitted.
/// Hand-written because ASP.NET Core's rate limiters keep their state in-process and know nothing of cost.
/// </summary>
public sealed class SpendGate(IConnectionMultiplexer redis, IOptionsMonitor<TierOptions> tiers, IOptions<LlmOptions> llm,
    IOptions<ConversationOptions> conversations, IOptions<BudgetOptions> budgets, AgentClients clients, ISpendHistory history,
    IBudgetAlerts alerts, TimeProvider time, ILogger<SpendGate> logger)
{
    private const long Nanos = 1_000_000_000;

    // KEYS: tokens hash, key budget hash, key reservations zset, then per agent: budget hash, reservations zset.
    // ARGV: tpm limit (0 none), tokens, key budget nanos (-1 none), cost nanos, reservation id, reservation ttl ms, day ttl s,
    //       then per agent: cap nanos.
    // Returns {1, bucket, tokens remaining} | {0, kind, retry ms, tokens remaining} | {2, index of the hash to seed}.
    private const string ReserveScript = """
        local t = redis.call('TIME')
        local sec = tonumber(t[1])
        local nowms = sec * 1000 + math.floor(tonumber(t[2]) / 1000)
        local tpm, tokens = tonumber(ARGV[1]), tonumber(ARGV[2])
        local cost, id, resttl, dayttl = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
        local budgets = { { KEYS[2], KEYS[3], tonumber(ARGV[3]) } }
        for i = 8, #ARGV do table.insert(budgets, { KEYS[2 * (i - 7) + 2], KEYS[2 * (i - 7) + 3], tonumber(ARGV[i]) }) end

        local used, buckets = 0, {}
        if tpm > 0 then
          local fields = redis.call('HGETALL', KEYS[1])
          local old = {}
          for i = 1, #fields, 2 do
            local s, v = tonumber(fields[i]), tonumber(fields[i + 1])
            if s <= sec - 60 then table.insert(old, fields[i]) else used = used + v; table.insert(buckets, { s, v }) end
          end
          if #old > 0 then redis.call('HDEL', KEYS[1], unpack(old)) end
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
            return { 0, 'tokens', retry, tpm - used }
          end
        end

        for i, b in ipairs(budgets) do
          if b[3] >= 0 then
            if redis.call('HEXISTS', b[1], 'spent') == 0 then return { 2, i } end
            local expired = redis.call('ZRANGEBYSCORE', b[2], '-inf', nowms)
            for _, rid in ipairs(expired) do
              local a = redis.call('HGET', b[1], 'r:' .. rid)
              if a then redis.call('HINCRBY', b[1], 'reserved', 0 - tonumber(a)); redis.call('HDEL', b[1], 'r:' .. rid) end
            end
            if #expired > 0 then redis.call('ZREMRANGEBYSCORE', b[2], '-inf', nowms) end
            local spent = tonumber(redis.call('HGET', b[1], 'spent'))
            local reserved = tonumber(redis.call('HGET', b[1], 'reserved') or '0')
            if spent + reserved + cost > b[3] then return { 0, i == 1 and 'budget' or 'agent_budget:' .. (i - 1), -1, tpm - used } end
          end
        end

        if tpm > 0 then
          redis.call('HINCRBY', KEYS[1], sec, tokens)
          redis.call('EXPIRE', KEYS[1], 120)
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
        if budgets[1][3] > 0 then share = math.floor(tonumber(redis.call('HGET', KEYS[2], 'spent')) * 1000 / budgets[1][3]) end
        return { 1, sec, tpm - used - tokens, share }
        """;

    // KEYS as above. ARGV: bucket, reserved tokens, actual tokens, reservation id, actual cost nanos.
    private const string SettleScript = """
        if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
          redis.call('HINCRBY', KEYS[1], ARGV[1], tonumber(ARGV[3]) - tonumber(ARGV[2]))
        end
        for i = 2, #KEYS, 2 do
          local a = redis.call('HGET', KEYS[i], 'r:' .. ARGV[4])
          if a then
            redis.call('HINCRBY', KEYS[i], 'reserved', 0 - tonumber(a))
            redis.call('HDEL', KEYS[i], 'r:' .. ARGV[4])
            redis.call('ZREM', KEYS[i + 1], ARGV[4])
          end
          if redis.call('HEXISTS', KEYS[i], 'spent') == 1 then redis.call('HINCRBY', KEYS[i], 'spent', ARGV[5]) end
        end
        return tonumber(redis.call('HGET', KEYS[2], 'spent') or '-1')
        """;

    /// <summary>The limits of a run for this account: the key's overrides, else its tier's; agents' daily caps.</summary>
    public SpendLimits LimitsFor(SpendAccount? account, IEnumerable<AgentDefinition> agents)
    {
        var caps = agents.Where(a => a.DailyBudgetUsd is not null).Select(a => (a.Name, a.DailyBudgetUsd!.Value)).ToList();
        if (account is null) return new SpendLimits(null, null, caps); // the admin key: no key limits, agent caps still hold
        var tier = tiers.CurrentValue.Find(account.Tier);
        var tpm = account.TokensPerMinute ?? tier?.TokensPerMinute;
        var budget = account.DailyBudgetUsd ?? tier?.DailyBudgetUsd;
        return new SpendLimits(tpm is > 0 ? tpm : null, budget, caps);
    }

    /// <summary>
    /// Tokens: the prompt as the model's tokenizer counts it plus the reply budget (the client's or the agent's max tokens,
    /// else Conversations:DefaultReplyBudget). Cost: that, priced on the dearest model of the chain (a fallback may answer).
    /// Parallel and cascade runs add up their agents.
    /// </summary>
    /// <param name="cheapest">Price on the cheapest model of each chain (a degraded run tries it first) instead of the dearest.</param>
    public SpendEstimate Estimate(IReadOnlyList<AgentDefinition> agents, RunInput input, bool cheapest = false)
    {
        long tokens = 0;
        decimal cost = 0;
        var options = new ChatOptions();
        input.ConfigureOptions?.Invoke(options);
        foreach (var agent in agents)
        {
            var chain = clients.ChainOf(agent);
            var prompt = ContextWindow.Count(ContextWindow.TokenizerFor(chain.FirstOrDefault()?.Model), input.MessagesFor(agent.SystemPrompt));
            var reply = options.MaxOutputTokens ?? agent.MaxOutputTokens ?? conversations.Value.DefaultReplyBudget;
            tokens += prompt + reply;
            var prices = AgentClients.OptionsOf(agent)
                .Select(o => llm.Value.CostOf(clients.ResolvedModel(o), prompt, reply, o.InputPer1K, o.OutputPer1K))
                .DefaultIfEmpty(0m).ToList();
            cost += cheapest ? prices.Min() : prices.Max();
        }
        return new SpendEstimate(tokens, cost);
    }

    /// <summary>
    /// Admits a run: reserves its estimate, and decides cost-aware degrade — a key past Budgets:DegradeAt of its budget
    /// tries the cheaper models first; a run whose estimate on the dearest models no longer fits the budget is admitted on
    /// its cheapest models' estimate when its agents have cheaper models, and runs degraded.
    /// </summary>
    public async Task<(SpendReservation? Reservation, SpendRefusal? Refusal, bool Degrade)> AdmitAsync(Guid keyId, SpendLimits limits,
        IReadOnlyList<AgentDefinition> agents, RunInput input, CancellationToken cancellationToken)
    {
        var runLimit = TimeSpan.FromSeconds(agents.Select(a => a.TimeoutSeconds).DefaultIfEmpty(120).Max());
        var names = limits.AgentCaps.Select(c => c.Agent).ToList();
        var (reservation, refusal) = await ReserveAsync(keyId, limits, names, Estimate(agents, input), runLimit, cancellationToken);
        if (reservation is not null) return (reservation, null, ShouldDegrade(reservation));
        if (refusal?.Kind != "budget" || budgets.Value.DegradeAt is null || !agents.Any(clients.HasCheaperFirst)) return (null, refusal, false);
        var (cheap, stillRefused) = await ReserveAsync(keyId, limits, names, Estimate(agents, input, cheapest: true), runLimit, cancellationToken);
        return cheap is not null ? (cheap, null, true) : (null, stillRefused, false);
    }

    /// <returns>The reservation (null when no limit applies), or the refusal.</returns>
    public async Task<(SpendReservation? Reservation, SpendRefusal? Refusal)> ReserveAsync(Guid keyId, SpendLimits limits,
        IReadOnlyList<string> agents, SpendEstimate estimate, TimeSpan runLimit, CancellationToken cancellationToken)
    {
        if (!limits.Any) return (null, null);
        if (limits.TokensPerMinute is { } tpm && estimate.Tokens > tpm)
            return (null, new SpendRefusal("tokens", $"This request needs about {estimate.Tokens:N0} tokens, more than the key's limit of {tpm:N0} tokens per minute.",
                TimeSpan.FromSeconds(60), 429, tpm, tpm));

        var now = time.GetUtcNow();
        var day = now.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        var reservation = new SpendReservation(Guid.NewGuid(), keyId, day, estimate.Tokens, 0, ToNanos(estimate.CostUsd, up: true),
            limits.AgentCaps.Select(c => c.Agent).ToList(), limits);
        var untilMidnight = now.Date.AddDays(1) - now.UtcDateTime;
        try
        {
            for (var attempt = 0; ; attempt++)
            {
                var result = (RedisResult[])(await redis.GetDatabase().ScriptEvaluateAsync(ReserveScript, Keys(reservation),
                [
                    limits.TokensPerMinute ?? 0, estimate.Tokens, limits.KeyDailyBudgetUsd is { } b ? ToNanos(b) : -1, reservation.CostNanos,
                    reservation.Id.ToString("N"), (long)(runLimit + TimeSpan.FromMinutes(1)).TotalMilliseconds,
                    (long)untilMidnight.TotalSeconds + 3600, .. limits.AgentCaps.Select(c => (RedisValue)ToNanos(c.Cap)),
                ]))!;
                switch ((int)result[0])
                {
                    case 1:
                        return (reservation with
                        {
                            TokenBucket = (long)result[1],
                            BudgetShare = (long)result[3] is >= 0 and var share ? share / 1000.0 : null,
                        }, null);
                    case 2 when attempt == 0:
                        await SeedAsync(reservation, (int)result[1] - 1, untilMidnight, cancellationToken);
                        continue;
                    case 2:
                        throw new InvalidOperationException("A budget counter could not be rebuilt.");
                }
                return (null, Refusal((string)result[1]!, (long)result[2], (long)result[3], limits, untilMidnight));
            }
        }
        catch (RedisException e)
        {
            // Fail closed: without the shared counters a limit cannot be held.
            logger.LogWarning("Spend limits unavailable ({Message}); refusing the run", e.Message);
            return (null, new SpendRefusal("unavailable", "Token limits and budgets cannot be checked right now (Redis is unavailable); retry shortly.",
                TimeSpan.FromSeconds(2), 503));
        }
    }

    /// <summary>
    /// Corrects a reservation to what the run really used (a cancelled or failed run settles what it spent), and raises the
    /// key's budget alerts the first time today's spend reaches each of <see cref="BudgetOptions.AlertThresholds"/>.
    /// </summary>
    public async Task SettleAsync(SpendReservation reservation, long tokens, decimal costUsd)
    {
        try
        {
            var spent = (long)(await redis.GetDatabase().ScriptEvaluateAsync(SettleScript, Keys(reservation),
                [reservation.TokenBucket, reservation.Tokens, tokens, reservation.Id.ToString("N"), ToNanos(costUsd)]));
            if (spent >= 0 && reservation.Limits.KeyDailyBudgetUsd is { } budget) await AlertAsync(reservation, (decimal)spent / Nanos, budget);
        }
        catch (Exception e) when (e is not RedisException)
        {
            // An alert that cannot be queued must not fail the run it was settled for.
            logger.LogError(e, "Could not raise a budget alert for key {KeyId}", reservation.KeyId);
        }
        catch (RedisException e)
        {
            // The reservation expires on its own; the spend is in the task and will be in the rebuilt counter after a loss.
            logger.LogWarning("Could not settle a spend reservation ({Message}); it expires on its own", e.Message);
        }
    }

    /// <summary>Cost-aware degrade: the key had spent at least Budgets:DegradeAt of its daily budget when the run was admitted.</summary>
    public bool ShouldDegrade(SpendReservation? reservation) =>
        reservation?.BudgetShare is { } share && budgets.Value.DegradeAt is { } at && share >= at;

    /// <summary>Today's spend of the key (settled, and reserved by runs in flight), for /usage.</summary>
    public async Task<(decimal Spent, decimal Reserved)?> TodayAsync(Guid keyId)
    {
        var day = time.GetUtcNow().ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        var values = await redis.GetDatabase().HashGetAsync(BudgetKey(keyId, day), ["spent", "reserved"]);
        return values[0].IsNull ? null : ((decimal)(long)values[0] / Nanos, values[1].IsNull ? 0m : (decimal)(long)values[1] / Nanos);
    }

    /// <summary>Each threshold alerts once per key and UTC day, whichever instance settles first (SET NX decides).</summary>
    private async Task AlertAsync(SpendReservation reservation, decimal spent, decimal budget)
    {
        foreach (var threshold in budgets.Value.AlertThresholds.Order())
        {
            if (spent < budget * threshold / 100m) continue;
            var first = await redis.GetDatabase().StringSetAsync($"spend:alert:{reservation.KeyId:N}:{reservation.Day}:{threshold}", 1,
                TimeSpan.FromDays(2), When.NotExists);
            if (first) await alerts.RaiseAsync(new BudgetAlert(reservation.KeyId, reservation.Day, threshold, spent, budget));
        }
    }

    private async Task SeedAsync(SpendReservation reservation, int index, TimeSpan untilMidnight, CancellationToken cancellationToken)
    {
        var keys = Keys(reservation);
        var (hash, spent) = index == 0
            ? (keys[1], await history.SpentTodayAsync(reservation.KeyId, cancellationToken))
            : (keys[2 * index + 1], await history.SpentTodayByAgentAsync(reservation.Agents[index - 1], cancellationToken));
        var db = redis.GetDatabase();
        await db.HashSetAsync(hash, "spent", ToNanos(spent), When.NotExists);
        await db.KeyExpireAsync(hash, untilMidnight + TimeSpan.FromHours(1));
        logger.LogInformation("Rebuilt today's spend counter {Counter} from recorded spend: ${Spent}", (string?)hash, spent);
    }

    private SpendRefusal Refusal(string kind, long retryMs, long tokensRemaining, SpendLimits limits, TimeSpan untilMidnight)
    {
        if (kind == "tokens")
            return new SpendRefusal("tokens", $"Token limit reached: {limits.TokensPerMinute:N0} tokens per minute.",
                retryMs > 0 ? TimeSpan.FromMilliseconds(retryMs) : TimeSpan.FromSeconds(60), 429, limits.TokensPerMinute, Math.Max(0, tokensRemaining));
        if (kind == "budget")
            return new SpendRefusal("budget", $"Daily budget of ${limits.KeyDailyBudgetUsd} for this key is spent (or reserved by runs in flight); it resets at 00:00 UTC.",
                untilMidnight, 429, limits.TokensPerMinute, limits.TokensPerMinute is null ? null : tokensRemaining);
        var agent = limits.AgentCaps[int.Parse(kind.Split(':')[1], CultureInfo.InvariantCulture) - 1];
        return new SpendRefusal("agent_budget", $"The agent '{agent.Agent}' has spent its daily cap of ${agent.Cap}; it resets at 00:00 UTC.",
            untilMidnight, 429, limits.TokensPerMinute, limits.TokensPerMinute is null ? null : tokensRemaining);
    }

    private static RedisKey[] Keys(SpendReservation r) =>
    [
        $"spend:tokens:{r.KeyId:N}", BudgetKey(r.KeyId, r.Day), $"spend:budget:{r.KeyId:N}:{r.Day}:reservations",
        .. r.Agents.SelectMany(a => new RedisKey[] { $"spend:agent:{a}:{r.Day}", $"spend:agent:{a}:{r.Day}:reservations" }),
    ];

    private static RedisKey BudgetKey(Guid keyId, string day) => $"spend:budget:{keyId:N}:{day}";

    private static long ToNanos(decimal usd, bool up = false) => (long)(up ? Math.Ceiling(usd * Nanos) : Math.Round(usd * Nanos));
}

/// <summary>Today's recorded spend (UTC), to rebuild a budget counter Redis lost.</summary>
public interface ISpendHistory
{
    Task<decimal> SpentTodayAsync(Guid keyId, CancellationToken cancellationToken);
    Task<decimal> SpentTodayByAgentAsync(string agent, CancellationToken cancellationToken);
}

/// <summary>A queued run could not be admitted because the spend counters are unreachable; the job retries later.</summary>
public sealed class SpendUnavailableException(string message) : Exception(message);

/// <summary>Binds "Budgets": alert thresholds and cost-aware degrade.</summary>
public sealed class BudgetOptions
{
    public const string SectionName = "Budgets";

    /// <summary>Percentages of a key's daily budget at which its alert webhook is called, once per day each.</summary>
    public int[] AlertThresholds { get; set; } = [80, 100];

    /// <summary>
    /// From this share of its daily budget (0–1) a key's runs try the cheaper models of each agent's chain first; null
    /// turns it off.
    /// </summary>
    public double? DegradeAt { get; set; } = 0.8;
}

/// <summary>A key's spend reached <see cref="Percent"/> % of its daily budget.</summary>
public sealed record BudgetAlert(Guid KeyId, string Day, int Percent, decimal SpentUsd, decimal BudgetUsd);

/// <summary>Sends budget alerts (a signed webhook to the key's alert URL, through the job queue).</summary>
public interface IBudgetAlerts
{
    Task RaiseAsync(BudgetAlert alert);
}
