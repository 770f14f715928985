using System.Diagnostics;
using AgentPlatform.Engine.Data;
using AgentPlatform.Engine.Telemetry;
using AgentPlatform.Engine.Webhooks;
using Hangfire;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace AgentPlatform.Engine.Tasks;

/// <summary>
/// POSTs a finished async task to its <c>webhook_url</c>, signed with the key's webhook secret (see
/// <see cref="WebhookSignature"/>). Delivery is at least once: a failed or non-2xx attempt throws and
/// Hangfire retries it with its backoff. A target that resolves only to blocked addresses is never
/// called and not retried; redirects are not followed; the response body is never read.
/// </summary>
public sealed class WebhookDeliveryJob(AgentDbContext db, WebhookSender sender, ILogger<WebhookDeliveryJob> logger)
{
    public const string HttpClientName = WebhookSender.HttpClientName;

    [JobDisplayName("webhook for task {0}")]
    [AutomaticRetry(Attempts = 8, DelaysInSeconds = [2, 10, 30, 120, 600, 1800, 3600, 7200], OnAttemptsExceeded = AttemptsExceededAction.Fail)]
    public async Task DeliverAsync(Guid taskId, CancellationToken cancellationToken)
    {
        var task = await db.Tasks.AsNoTracking().FirstOrDefaultAsync(t => t.Id == taskId, cancellationToken);
        if (task?.WebhookUrl is null || !task.IsFinal) return;

        using var activity = PlatformTelemetry.ActivitySource.StartActivity("webhook.deliver");
        activity?.SetTag("agent.task.id", task.Id.ToString());
        var secret = await db.ApiKeys.AsNoTracking().Where(k => k.Id == task.ApiKeyId).Select(k => k.WebhookSecret).FirstOrDefaultAsync(cancellationToken);
        if (secret is null)
        {
            // Unsigned deliveries would teach receivers to accept anything; the submission refuses keys without a secret.
            logger.LogError("Webhook for task {TaskId} not sent: its API key has no webhook secret", task.Id);
            activity?.SetStatus(ActivityStatusCode.Error, "no webhook secret");
            return;
        }

        var payload = new
        {
            Event = "task." + task.Status,
            TaskId = task.Id,
            task.Status,
            task.Agent,
            task.Result,
            task.Error,
            Usage = task.PromptTokens is null ? null : new
            {
                PromptTokens = task.PromptTokens,
                CompletionTokens = task.CompletionTokens ?? 0,
                TotalTokens = task.PromptTokens + (task.CompletionTokens ?? 0),
            },
            task.CostUsd,
            task.CreatedAt,
            task.CompletedAt,
        };
        // A refused target is recorded once and not retried: the policy will not change on a retry.
        if (!await sender.SendAsync(task.WebhookUrl, secret, payload, task.Id.ToString(), cancellationToken))
            activity?.SetStatus(ActivityStatusCode.Error, "webhook target refused");
    }
}
