using AgentPlatform.Engine.Data;
using AgentPlatform.Engine.Webhooks;
using Hangfire;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace AgentPlatform.Engine.Admission;

/// <summary>Queues budget alerts as Hangfire jobs, so a delivery survives a restart and retries like task webhooks.</summary>
public sealed class QueuedBudgetAlerts(IBackgroundJobClient jobs) : IBudgetAlerts
{
    public Task RaiseAsync(BudgetAlert alert)
    {
        jobs.Enqueue<BudgetAlertJob>(job => job.DeliverAsync(alert, CancellationToken.None));
        return Task.CompletedTask;
    }
}

/// <summary>POSTs a budget alert to the key's <c>alert_webhook_url</c>, signed with its webhook secret; at least once.</summary>
public sealed class BudgetAlertJob(AgentDbContext db, WebhookSender sender, ILogger<BudgetAlertJob> logger)
{
    [JobDisplayName("budget alert {0}")]
    [AutomaticRetry(Attempts = 8, DelaysInSeconds = [2, 10, 30, 120, 600, 1800, 3600, 7200], OnAttemptsExceeded = AttemptsExceededAction.Fail)]
    public async Task DeliverAsync(BudgetAlert alert, CancellationToken cancellationToken)
    {
        var key = await db.ApiKeys.AsNoTracking().Where(k => k.Id == alert.KeyId)
            .Select(k => new { k.AlertWebhookUrl, k.WebhookSecret, k.Name }).FirstOrDefaultAsync(cancellationToken);
        logger.LogWarning("Key {KeyId} has spent {Spent} USD, {Percent} % of its daily budget of {Budget} USD ({Day})",
            alert.KeyId, alert.SpentUsd, alert.Percent, alert.BudgetUsd, alert.Day);
        if (key?.AlertWebhookUrl is null || key.WebhookSecret is null) return;
        await sender.SendAsync(key.AlertWebhookUrl, key.WebhookSecret, new
        {
            Event = "budget.threshold",
            KeyId = alert.KeyId,
            KeyName = key.Name,
            alert.Day,
            alert.Percent,
            alert.SpentUsd,
            alert.BudgetUsd,
        }, $"budget-{alert.KeyId:N}-{alert.Day}-{alert.Percent}", cancellationToken);
    }
}
