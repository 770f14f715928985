using System.Net.Http.Json;
using System.Text.Json;
using AgentPlatform.Engine.Data;
using Hangfire;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace AgentPlatform.Engine.Tasks;

/// <summary>
/// POSTs a finished async task to its <c>webhook_url</c>. Delivery is at least once: a failed or
/// non-2xx attempt throws and Hangfire retries it with its backoff.
/// </summary>
public sealed class WebhookDeliveryJob(AgentDbContext db, IHttpClientFactory httpClients, ILogger<WebhookDeliveryJob> logger)
{
    public const string HttpClientName = "webhooks";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
    };

    [JobDisplayName("webhook for task {0}")]
    [AutomaticRetry(Attempts = 8, DelaysInSeconds = [2, 10, 30, 120, 600, 1800, 3600, 7200], OnAttemptsExceeded = AttemptsExceededAction.Fail)]
    public async Task DeliverAsync(Guid taskId, CancellationToken cancellationToken)
    {
        var task = await db.Tasks.AsNoTracking().FirstOrDefaultAsync(t => t.Id == taskId, cancellationToken);
        if (task?.WebhookUrl is null || !task.IsFinal) return;

        using var response = await httpClients.CreateClient(HttpClientName).PostAsJsonAsync(task.WebhookUrl, new
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
        }, Json, cancellationToken);
        response.EnsureSuccessStatusCode();
        logger.LogInformation("Webhook for task {TaskId} delivered ({Status})", task.Id, (int)response.StatusCode);
    }
}
