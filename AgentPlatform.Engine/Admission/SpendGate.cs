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

/// <summary>
/// Why a run was refused: <see cref="Kind"/> is requests, tokens, budget or agent_budget (or unavailable when Redis is down).
/// </summary>
public sealed record SpendRefusal(string Kind, string Message, TimeSpan RetryAfter, int Status = 429, long? TokenLimit = null,
    long? TokensRemaining = null)
{
    /// <summary>The key's requests per minute are used up (its own rpm_limit, else its tier's).</summary>
    public static SpendRefusal Requests(RateLimitDecision decision) =>
        new("requests", $"This key allows {decision.Limit} requests per minute; retry in {Math.Max(1, (int)Math.Ceiling(decision.Reset.TotalSeconds))} s.",
            decision.Reset, 429);
}

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

    // KEYS as the reservation's (AdmissionScript's spend keys). ARGV: bucket, reserved tokens, actual tokens, reservation id, actual cost nanos.
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
    /// Admits a run in one Redis round trip (<see cref="AdmissionScript"/>): counts the request against
    /// <paramref name="requests"/>, serves <paramref name="cacheEntry"/> when the exact cache holds it, else reserves the run's
    /// estimate. Then cost-aware degrade: a key past Budgets:DegradeAt of its budget tries the cheaper models first; a run whose
    /// estimate on the dearest models no longer fits the budget is admitted on its cheapest models' estimate when its agents
    /// have cheaper models, and runs degraded (a second round trip, only then).
    /// </summary>
    public async Task<RunAdmission> AdmitAsync(Guid keyId, SpendLimits limits, IReadOnlyList<AgentDefinition> agents, RunInput input,
        CancellationToken cancellationToken, RequestCheck? requests = null, RedisKey? cacheEntry = null)
    {
        if (!limits.Any && requests is null && cacheEntry is null) return RunAdmission.Nothing;
        var runLimit = TimeSpan.FromSeconds(agents.Select(a => a.TimeoutSeconds).DefaultIfEmpty(120).Max());
        var names = limits.AgentCaps.Select(c => c.Agent).ToList();
        var first = await EvaluateAsync(keyId, limits, names, limits.Any ? Estimate(agents, input) : null, runLimit, requests, cacheEntry,
            cancellationToken);
        if (first.Reservation is not null || first.Refusal?.Kind != "budget" || budgets.Value.DegradeAt is null || !agents.Any(clients.HasCheaperFirst))
            return first with { Degrade = ShouldDegrade(first.Reservation) };
        var cheap = await EvaluateAsync(keyId, limits, names, Estimate(agents, input, cheapest: true), runLimit, null, null, cancellationToken);
        return cheap.Reservation is not null
            ? first with { Reservation = cheap.Reservation, Refusal = null, Degrade = true }
            : first with { Refusal = cheap.Refusal };
    }

    private async Task<RunAdmission> EvaluateAsync(Guid keyId, SpendLimits limits, IReadOnlyList<string> agents, SpendEstimate? estimate,
        TimeSpan runLimit, RequestCheck? requests, RedisKey? cacheEntry, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var day = now.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        var untilMidnight = now.Date.AddDays(1) - now.UtcDateTime;
        var reserve = estimate is not null && limits.Any;
        SpendRefusal? tooLarge = null;
        if (reserve && limits.TokensPerMinute is { } tpm && estimate!.Tokens > tpm)
        {
            // Never admissible: no reservation, but the request still counts and the cache may still answer it.
            tooLarge = new SpendRefusal("tokens", $"This request needs about {estimate.Tokens:N0} tokens, more than the key's limit of {tpm:N0} tokens per minute.",
                TimeSpan.FromSeconds(60), 429, tpm, tpm);
            reserve = false;
            if (requests is null && cacheEntry is null) return RunAdmission.Nothing with { Refusal = tooLarge };
        }
        var reservation = new SpendReservation(Guid.NewGuid(), keyId, day, estimate?.Tokens ?? 0, 0, ToNanos(estimate?.CostUsd ?? 0m, up: true),
            limits.AgentCaps.Select(c => c.Agent).ToList(), limits);
        RedisValue[]? spendArgs = reserve
            ?
            [
                limits.TokensPerMinute ?? 0, reservation.Tokens, limits.KeyDailyBudgetUsd is { } b ? ToNanos(b) : -1, reservation.CostNanos,
                reservation.Id.ToString("N"), (long)(runLimit + TimeSpan.FromMinutes(1)).TotalMilliseconds,
                (long)untilMidnight.TotalSeconds + 3600, .. limits.AgentCaps.Select(c => (RedisValue)ToNanos(c.Cap)),
            ]
            : null;
        RateLimitDecision? decision = null;
        try
        {
            for (var attempt = 0; ; attempt++)
            {
                // After a rebuilt counter the request is not counted again, and the cache was already read.
                var result = await AdmissionScript.EvaluateAsync(redis.GetDatabase(), attempt == 0 ? requests : null, attempt == 0 ? cacheEntry : null,
                    spendArgs is null ? null : Keys(reservation), spendArgs);
                decision ??= result.Requests;
                switch (result.Outcome)
                {
                    case AdmissionScript.Outcome.RequestRefused:
                        return new RunAdmission(null, null, false, decision, null);
                    case AdmissionScript.Outcome.CacheHit:
                        return new RunAdmission(null, null, false, decision, (string?)result[0]);
                    case AdmissionScript.Outcome.Admitted:
                        return new RunAdmission(null, tooLarge, false, decision, null);
                    case AdmissionScript.Outcome.Reserved:
                        return new RunAdmission(reservation with
                        {
                            TokenBucket = (long)result[0],
                            BudgetShare = (long)result[2] is >= 0 and var share ? share / 1000.0 : null,
                        }, null, false, decision, null);
                    case AdmissionScript.Outcome.Seed when attempt == 0:
                        await SeedAsync(reservation, (int)result[0] - 1, untilMidnight, cancellationToken);
                        continue;
                    case AdmissionScript.Outcome.Seed:
                        throw new InvalidOperationException("A budget counter could not be rebuilt.");
                }
                return new RunAdmission(null, Refusal((string)result[0]!, (long)result[1], (long)result[2], limits, untilMidnight), false, decision, null);
            }
        }
        catch (Exception e) when (e is RedisException or RedisTimeoutException && (requests is not null || limits.Any))
        {
            // Fail closed: without the shared counters a limit cannot be held.
            logger.LogWarning("Admission limits unavailable ({Message}); refusing the run", e.Message);
            return new RunAdmission(null, new SpendRefusal("unavailable", "Rate limits, token limits and budgets cannot be checked right now (Redis is unavailable); retry shortly.",
                TimeSpan.FromSeconds(2), 503), false, null, null);
        }
        catch (Exception e) when (e is RedisException or RedisTimeoutException)
        {
            // Nothing to enforce, only the cache to read: the run goes on as a miss.
            logger.LogWarning("The response cache cannot be read ({Reason}); the run goes on as a miss", e.Message);
            return RunAdmission.Nothing;
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

/// <summary>
/// What admission decided for a run: the request's limit figures (null when it has none), then either the request was
/// refused (<see cref="RequestRefused"/>), the exact cache answered (<see cref="CachedAnswer"/>, nothing reserved), a token
/// limit or budget refused it (<see cref="Refusal"/>), or it runs (holding <see cref="Reservation"/> when limits apply).
/// </summary>
public sealed record RunAdmission(SpendReservation? Reservation, SpendRefusal? Refusal, bool Degrade, RateLimitDecision? Requests,
    string? CachedAnswer)
{
    public static readonly RunAdmission Nothing = new(null, null, false, null, null);

    public bool RequestRefused => Requests is { Allowed: false };
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
