using System.ClientModel;
using System.Diagnostics;
using System.Text.Json;
using AgentPlatform.Engine.Agents;
using AgentPlatform.Engine.Data;
using AgentPlatform.Engine.Llm;
using AgentPlatform.Engine.Telemetry;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Polly.CircuitBreaker;
using Polly.Timeout;

namespace AgentPlatform.Engine.Tasks;

/// <summary>What to do with a task whose run is cancelled before it finishes.</summary>
public enum CancellationOutcome
{
    /// <summary>The worker is shutting down: the task goes back to the queue and runs again.</summary>
    Requeue,
    /// <summary>The caller went away (sync request): the task ends as cancelled.</summary>
    Cancel,
}

/// <summary>
/// Runs one task to a final state, the same way in the Api (sync) and in the Worker (async).
/// Every state change is a conditional update, so a task that is re-run, cancelled or taken over
/// after a crash never completes twice.
/// </summary>
public sealed class TaskRunner(
    AgentDbContext db, AgentCatalog agents, ChatClientPool llm, TaskEvents events, ILogger<TaskRunner> logger)
{
    /// <summary>Runs a stored task (the Worker's path): loads it, claims it, executes it.</summary>
    public async Task<AgentTask?> RunAsync(Guid taskId, CancellationOutcome onCancel, CancellationToken cancellationToken)
    {
        var task = await db.Tasks.AsNoTracking().FirstOrDefaultAsync(t => t.Id == taskId, cancellationToken);
        if (task is null)
        {
            logger.LogWarning("Task {TaskId} does not exist; nothing to run", taskId);
            return null;
        }

        using var scope = logger.BeginScope(new Dictionary<string, object> { ["TaskId"] = task.Id, ["ApiKeyId"] = task.ApiKeyId });
        if (task.IsFinal)
        {
            logger.LogInformation("Task {TaskId} is already {Status}; not running it again", task.Id, task.Status);
            return task;
        }

        var startedAt = DateTimeOffset.UtcNow;
        var claimed = await db.Tasks
            .Where(t => t.Id == task.Id && (t.Status == TaskStatus.Queued || t.Status == TaskStatus.Running))
            .ExecuteUpdateAsync(s => s
                .SetProperty(t => t.Status, TaskStatus.Running)
                .SetProperty(t => t.StartedAt, startedAt)
                .SetProperty(t => t.Attempts, t => t.Attempts + 1), CancellationToken.None);
        if (claimed == 0) return await ReloadAsync(task.Id);
        task.Status = TaskStatus.Running;
        task.StartedAt = startedAt;
        task.Attempts++;
        await events.PublishAsync(task.Id);
        return await ExecuteAsync(task, onCancel, cancellationToken);
    }

    /// <summary>
    /// Runs a task its caller has just stored as running (the Api's sync path), saving the load and
    /// claim round trips; nobody long-polls a sync task, so no change signals are sent either.
    /// </summary>
    public async Task<AgentTask> RunClaimedAsync(AgentTask task, CancellationToken cancellationToken)
    {
        using var scope = logger.BeginScope(new Dictionary<string, object> { ["TaskId"] = task.Id, ["ApiKeyId"] = task.ApiKeyId });
        return (await ExecuteAsync(task, CancellationOutcome.Cancel, cancellationToken))!;
    }

    private async Task<AgentTask?> ExecuteAsync(AgentTask task, CancellationOutcome onCancel, CancellationToken cancellationToken)
    {
        using var activity = StartActivity(task);
        var startedAt = task.StartedAt ?? DateTimeOffset.UtcNow;
        var agent = agents.Find(task.Agent);
        if (agent is null)
        {
            return await FinishAsync(task, TaskStatus.Failed, error: $"Agent '{task.Agent}' no longer exists.", startedAt: startedAt);
        }

        var model = llm.ModelFor(agent.Model);
        activity?.SetTag("agent.name", agent.Name);
        activity?.SetTag("gen_ai.request.model", model);
        var clock = Stopwatch.StartNew();
        try
        {
            var response = await llm.For(model).GetResponseAsync(BuildMessages(agent, task), new ChatOptions
            {
                ModelId = model,
                Temperature = agent.Temperature,
                MaxOutputTokens = agent.MaxOutputTokens,
            }, cancellationToken);

            return await FinishAsync(task, TaskStatus.Completed, result: response.Text, response: response,
                model: response.ModelId ?? model, elapsed: clock.Elapsed, startedAt: startedAt);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            if (onCancel == CancellationOutcome.Requeue)
            {
                // Shutdown or job deletion: only a task still running goes back to the queue;
                // a task the client cancelled stays cancelled.
                await db.Tasks.Where(t => t.Id == task.Id && t.Status == TaskStatus.Running)
                    .ExecuteUpdateAsync(s => s.SetProperty(t => t.Status, TaskStatus.Queued), CancellationToken.None);
                logger.LogInformation("Task {TaskId} interrupted; back in the queue", task.Id);
                throw;
            }
            return await FinishAsync(task, TaskStatus.Cancelled, error: "The client closed the request before the task finished.",
                elapsed: clock.Elapsed, startedAt: startedAt);
        }
        catch (Exception e) when (IsProviderFailure(e, cancellationToken))
        {
            logger.LogWarning(e, "Task {TaskId} failed at the LLM provider", task.Id);
            activity?.SetStatus(ActivityStatusCode.Error, e.Message);
            return await FinishAsync(task, TaskStatus.Failed, error: DescribeFailure(e), model: model,
                elapsed: clock.Elapsed, startedAt: startedAt);
        }
    }

    private async Task<AgentTask?> FinishAsync(AgentTask task, string status, string? result = null, string? error = null,
        ChatResponse? response = null, string? model = null, TimeSpan elapsed = default, DateTimeOffset startedAt = default)
    {
        var promptTokens = (int?)response?.Usage?.InputTokenCount;
        var completionTokens = (int?)response?.Usage?.OutputTokenCount;
        decimal? cost = response?.CostUsd();
        var durationMs = (long)elapsed.TotalMilliseconds;
        var completedAt = DateTimeOffset.UtcNow;

        // Only the run that holds the task (status running) may finish it.
        var updated = await db.Tasks.Where(t => t.Id == task.Id && t.Status == TaskStatus.Running)
            .ExecuteUpdateAsync(s => s
                .SetProperty(t => t.Status, status)
                .SetProperty(t => t.Result, result)
                .SetProperty(t => t.Error, error)
                .SetProperty(t => t.Model, model)
                .SetProperty(t => t.PromptTokens, promptTokens)
                .SetProperty(t => t.CompletionTokens, completionTokens)
                .SetProperty(t => t.CostUsd, cost)
                .SetProperty(t => t.DurationMs, durationMs)
                .SetProperty(t => t.CompletedAt, completedAt), CancellationToken.None);

        if (updated == 0) return await ReloadAsync(task.Id); // cancelled or taken over meanwhile

        PlatformTelemetry.RecordTask(task.Agent, status, elapsed);
        logger.LogInformation("Task {TaskId} {Status} in {DurationMs} ms ({PromptTokens}+{CompletionTokens} tokens, ${CostUsd})",
            task.Id, status, durationMs, promptTokens, completionTokens, cost);
        if (task.IsAsync) await events.PublishAsync(task.Id);

        task.Status = status;
        task.Result = result;
        task.Error = error;
        task.Model = model;
        task.PromptTokens = promptTokens;
        task.CompletionTokens = completionTokens;
        task.CostUsd = cost;
        task.DurationMs = durationMs;
        task.CompletedAt = completedAt;
        return task;
    }

    private Task<AgentTask?> ReloadAsync(Guid id) =>
        db.Tasks.AsNoTracking().FirstOrDefaultAsync(t => t.Id == id, CancellationToken.None);

    private static List<ChatMessage> BuildMessages(AgentDefinition agent, AgentTask task)
    {
        var messages = new List<ChatMessage> { new(ChatRole.System, agent.SystemPrompt) };
        if (!string.IsNullOrWhiteSpace(task.ContextJson))
        {
            messages.Add(new(ChatRole.System, "Context supplied with the task (JSON): " + task.ContextJson));
        }
        messages.Add(new(ChatRole.User, task.Input));
        return messages;
    }

    private static Activity? StartActivity(AgentTask task)
    {
        // The Worker has no ambient request: continue the trace of the request that enqueued the task.
        ActivityContext.TryParse(task.TraceParent, null, out var parent);
        var activity = Activity.Current is null && parent != default
            ? PlatformTelemetry.ActivitySource.StartActivity("agent.task", ActivityKind.Consumer, parent)
            : PlatformTelemetry.ActivitySource.StartActivity("agent.task", ActivityKind.Internal);
        activity?.SetTag("agent.task.id", task.Id.ToString());
        activity?.SetTag("agent.task.async", task.IsAsync);
        return activity;
    }

    internal static bool IsProviderFailure(Exception e, CancellationToken cancellationToken) => e switch
    {
        ClientResultException or HttpRequestException or TimeoutRejectedException or BrokenCircuitException => true,
        // HttpClient's own timeout surfaces as a cancellation that nobody asked for.
        OperationCanceledException => !cancellationToken.IsCancellationRequested,
        JsonException => true,
        _ => false,
    };

    internal static string DescribeFailure(Exception e)
    {
        var message = e switch
        {
            ClientResultException c => $"LLM provider answered HTTP {c.Status}: {c.Message}",
            TimeoutRejectedException or OperationCanceledException => "LLM provider did not answer in time.",
            BrokenCircuitException => "LLM provider is unavailable (circuit open).",
            HttpRequestException h => $"LLM provider could not be reached: {h.Message}",
            _ => $"LLM provider failed: {e.Message}",
        };
        return message.Length <= 2000 ? message : message[..2000];
    }
}
