using System.Security.Claims;
using AgentPlatform.Api.Auth;
using AgentPlatform.Api.Health;
using AgentPlatform.Engine.Admission;
using AgentPlatform.Engine.Data;
using Hangfire;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Scalar.AspNetCore;

namespace AgentPlatform.Api.Apis;

public sealed record UsageView(Guid KeyId, string Tier, DateOnly Date, int Requests, long PromptTokens, long CompletionTokens,
    long TotalTokens, decimal CostUsd, decimal? DailyBudgetUsd, decimal? BudgetRemainingUsd, int? RequestsPerMinute);

/// <summary>Health, API reference, Hangfire dashboard and the caller's usage.</summary>
public static class OperationsApi
{
    public static WebApplication MapOperationsApi(this WebApplication app)
    {
        app.MapHealthChecks("/health", new HealthCheckOptions
        {
            Predicate = check => !check.Tags.Contains("live"),
            ResponseWriter = HealthResponseWriter.WriteAsync,
            ResultStatusCodes =
            {
                [HealthStatus.Healthy] = StatusCodes.Status200OK,
                [HealthStatus.Degraded] = StatusCodes.Status200OK,
                [HealthStatus.Unhealthy] = StatusCodes.Status503ServiceUnavailable,
            },
        });

        app.MapOpenApi();
        app.MapScalarApiReference("/docs", options => options.WithTitle("AgentPlatform API"));

        // Admin only; the dashboard's own filter list is emptied so the endpoint policy decides.
        app.MapHangfireDashboard("/hangfire", new DashboardOptions { Authorization = [], DashboardTitle = "AgentPlatform jobs" })
            .RequireAuthorization(CallerIdentity.AdminPolicy);

        app.MapGet("/usage", GetUsageAsync).RequireAuthorization().WithTags("Usage")
            .WithName("GetUsage").WithSummary("Today's requests, tokens and cost for the calling key (UTC day)");
        return app;
    }

    public static async Task<Ok<UsageView>> GetUsageAsync(ClaimsPrincipal user, [FromServices] AgentDbContext db, [FromServices] IOptionsMonitor<TierOptions> tiers,
        CancellationToken cancellationToken)
    {
        var caller = user.GetCaller();
        var today = DateOnly.FromDateTime(DateTime.UtcNow);
        var since = new DateTimeOffset(today.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
        var usage = await db.Tasks.Where(t => t.ApiKeyId == caller.KeyId && t.CreatedAt >= since)
            .GroupBy(_ => 1)
            .Select(g => new
            {
                Requests = g.Count(),
                Prompt = g.Sum(t => (long?)t.PromptTokens) ?? 0,
                Completion = g.Sum(t => (long?)t.CompletionTokens) ?? 0,
                Cost = g.Sum(t => t.CostUsd) ?? 0m,
            })
            .FirstOrDefaultAsync(cancellationToken);
        var limits = tiers.CurrentValue.Find(caller.Tier);
        var budget = caller.DailyBudgetUsd ?? limits?.DailyBudgetUsd;
        var cost = usage?.Cost ?? 0m;
        return TypedResults.Ok(new UsageView(caller.KeyId, caller.Tier, today, usage?.Requests ?? 0, usage?.Prompt ?? 0,
            usage?.Completion ?? 0, (usage?.Prompt ?? 0) + (usage?.Completion ?? 0), cost, budget,
            budget is null ? null : Math.Max(0, budget.Value - cost), limits?.RequestsPerMinute));
    }
}
