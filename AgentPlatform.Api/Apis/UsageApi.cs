using System.Globalization;
using System.Security.Claims;
using System.Text.RegularExpressions;
using AgentPlatform.Api.Auth;
using AgentPlatform.Engine.Admission;
using AgentPlatform.Engine.Billing;
using AgentPlatform.Engine.Data;
using AgentPlatform.Engine.Tasks;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace AgentPlatform.Api.Apis;

/// <summary>
/// The caller's usage: today's requests, tokens and cost of its tasks, its budget and rate limit (as before the ledger),
/// then the usage ledger over <c>from</c>..<c>to</c>: every billable call (chat, summary, embedding, cache hit), totals and
/// groups.
/// </summary>
/// <param name="BudgetReservedUsd">Spend reserved by this key's runs in flight (they settle when they end); null without a budget counter today.</param>
public sealed record UsageView(Guid KeyId, string Tier, DateOnly Date, int Requests, long PromptTokens, long CompletionTokens,
    long TotalTokens, decimal CostUsd, decimal? DailyBudgetUsd, decimal? BudgetRemainingUsd, int? RequestsPerMinute,
    DateTimeOffset From, DateTimeOffset To, string GroupBy, UsageTotals Totals, IReadOnlyList<UsageGroup> Groups,
    int? TokensPerMinute = null, decimal? BudgetReservedUsd = null);

/// <summary>Every key's usage from the ledger (admin).</summary>
public sealed record AdminUsageView(DateTimeOffset From, DateTimeOffset To, string GroupBy, Guid? ApiKeyId, UsageTotals Totals,
    IReadOnlyList<UsageGroup> Groups);

/// <summary>GET /usage for the calling key, GET /admin/usage for every key.</summary>
public static partial class UsageApi
{
    public static IEndpointRouteBuilder MapUsageApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/usage", GetUsageAsync).RequireAuthorization().WithTags("Usage").WithName("GetUsage")
            .WithSummary("The calling key's usage: today's tasks, budget and rate limit, and the usage ledger over a range, grouped by day, agent, model or kind");
        app.MapGet("/admin/usage", GetAllUsageAsync).RequireAuthorization(CallerIdentity.AdminPolicy).WithTags("Admin").WithName("GetAllUsage")
            .WithSummary("Every key's usage from the ledger over a range, grouped by key, day, agent, model or kind");
        return app;
    }

    public static async Task<Results<Ok<UsageView>, ValidationProblem>> GetUsageAsync(ClaimsPrincipal user, [AsParameters] UsageRange range,
        [FromServices] AgentDbContext db, [FromServices] UsageReports reports, [FromServices] IOptionsMonitor<TierOptions> tiers,
        [FromServices] IOptions<UsageOptions> options, [FromServices] TimeProvider time, [FromServices] SpendGate spend,
        [FromServices] TaskWriteBehind writeBehind, CancellationToken cancellationToken)
    {
        var errors = new Dictionary<string, string[]>();
        var query = range.ToQuery(UsageGrouping.ForCaller, UsageGrouping.Day, options.Value, time.GetUtcNow(), errors);
        if (query is null) return TypedResults.ValidationProblem(errors);

        var caller = user.GetCaller();
        var today = DateOnly.FromDateTime(time.GetUtcNow().UtcDateTime);
        var since = UsageLedger.StartOfDay(time.GetUtcNow());
        // The caller's sync tasks this instance finished are counted once written (one write away).
        await writeBehind.WhenKeyWrittenAsync(caller.KeyId, cancellationToken);
        var tasks = await db.Tasks.Where(t => t.ApiKeyId == caller.KeyId && t.CreatedAt >= since)
            .GroupBy(_ => 1)
            .Select(g => new
            {
                Requests = g.Count(),
                Prompt = g.Sum(t => (long?)t.PromptTokens) ?? 0,
                Completion = g.Sum(t => (long?)t.CompletionTokens) ?? 0,
                Cost = g.Sum(t => t.CostUsd) ?? 0m,
            })
            .FirstOrDefaultAsync(cancellationToken);
        var report = await reports.ReadAsync(query with { ApiKeyId = caller.KeyId }, cancellationToken);

        var limits = tiers.CurrentValue.Find(caller.Tier);
        var budget = caller.DailyBudgetUsd ?? limits?.DailyBudgetUsd;
        var cost = tasks?.Cost ?? 0m;
        (decimal Spent, decimal Reserved)? counter = null;
        try
        {
            counter = budget is null ? null : await spend.TodayAsync(caller.KeyId);
        }
        catch (StackExchange.Redis.RedisException)
        {
            // The counters are unreachable; the task figures above still answer.
        }
        return TypedResults.Ok(new UsageView(caller.KeyId, caller.Tier, today, tasks?.Requests ?? 0, tasks?.Prompt ?? 0,
            tasks?.Completion ?? 0, (tasks?.Prompt ?? 0) + (tasks?.Completion ?? 0), cost, budget,
            budget is null ? null : Math.Max(0, budget.Value - cost - (counter?.Reserved ?? 0m)), caller.RpmLimit ?? limits?.RequestsPerMinute,
            query.From, query.To, query.GroupBy, report.Totals, report.Groups,
            caller.TpmLimit ?? limits?.TokensPerMinute, counter?.Reserved));
    }

    public static async Task<Results<Ok<AdminUsageView>, ValidationProblem>> GetAllUsageAsync([AsParameters] UsageRange range,
        [FromQuery(Name = "api_key_id")] string? apiKeyId, [FromServices] UsageReports reports, [FromServices] IOptions<UsageOptions> options,
        [FromServices] TimeProvider time, CancellationToken cancellationToken)
    {
        var errors = new Dictionary<string, string[]>();
        var query = range.ToQuery(UsageGrouping.ForAdmin, UsageGrouping.Key, options.Value, time.GetUtcNow(), errors);
        Guid? key = null;
        if (!string.IsNullOrEmpty(apiKeyId))
        {
            if (Guid.TryParse(apiKeyId, out var parsed)) key = parsed;
            else errors["api_key_id"] = ["Must be a key id (a UUID, as GET /admin/keys lists them)."];
        }
        if (query is null || errors.Count > 0) return TypedResults.ValidationProblem(errors);

        var report = await reports.ReadAsync(query with { ApiKeyId = key }, cancellationToken);
        return TypedResults.Ok(new AdminUsageView(query.From, query.To, query.GroupBy, key, report.Totals, report.Groups));
    }

    /// <summary>
    /// The range and grouping of a usage request. <c>from</c> and <c>to</c> are ISO 8601: a date (UTC) or a date and time
    /// (UTC unless it carries an offset). <c>from</c> is inclusive; <c>to</c> is exclusive, except that a date means up to
    /// the end of that day. Without them: today (UTC).
    /// </summary>
    public sealed class UsageRange
    {
        [FromQuery(Name = "from")] public string? From { get; init; }
        [FromQuery(Name = "to")] public string? To { get; init; }
        [FromQuery(Name = "group_by")] public string? GroupBy { get; init; }

        internal UsageQuery? ToQuery(IReadOnlyList<string> groupings, string defaultGrouping, UsageOptions options, DateTimeOffset now,
            Dictionary<string, string[]> errors)
        {
            DateTimeOffset? from = null, to = null;
            if (!string.IsNullOrWhiteSpace(From))
            {
                if (ParseInstant(From, endOfDay: false) is { } parsed) from = parsed;
                else errors["from"] = [InstantError];
            }
            if (!string.IsNullOrWhiteSpace(To))
            {
                if (ParseInstant(To, endOfDay: true) is { } parsed) to = parsed;
                else errors["to"] = [InstantError];
            }
            var groupBy = string.IsNullOrWhiteSpace(GroupBy) ? defaultGrouping : GroupBy.Trim().ToLowerInvariant();
            if (!groupings.Contains(groupBy))
                errors["group_by"] = [$"Group by one of: {string.Join(", ", groupings)}."];
            if (errors.Count > 0) return null;

            // Today by default; a lone "to" reaches back to the start of its own day, a lone "from" forward to the end of today.
            to ??= from is { } start && start > now ? UsageLedger.StartOfDay(start).AddDays(1) : UsageLedger.StartOfDay(now).AddDays(1);
            from ??= UsageLedger.StartOfDay(to.Value.AddTicks(-1));
            if (from > to)
            {
                errors["to"] = [$"'to' ({to:O}) is before 'from' ({from:O})."];
                return null;
            }
            if (to - from > TimeSpan.FromDays(options.MaxRangeDays))
            {
                errors["to"] = [$"The range from {from:O} to {to:O} is longer than {options.MaxRangeDays} days; ask for a shorter one."];
                return null;
            }
            return new UsageQuery(from.Value, to.Value, groupBy, null);
        }

        private const string InstantError =
            "Must be an ISO 8601 date (2026-11-25, UTC) or date and time (2026-11-25T13:00:00Z, UTC unless it has an offset).";

        private static DateTimeOffset? ParseInstant(string text, bool endOfDay)
        {
            text = text.Trim();
            if (DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var date))
            {
                var start = new DateTimeOffset(date.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
                return endOfDay ? start.AddDays(1) : start;
            }
            if (!IsoDateTime().IsMatch(text)) return null;
            return DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal,
                out var instant) ? instant : null;
        }
    }

    [GeneratedRegex(@"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})?$")]
    private static partial Regex IsoDateTime();
}
