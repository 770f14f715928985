using System.Diagnostics;
using AgentPlatform.Engine.Agents;
using AgentPlatform.Engine.Data;
using AgentPlatform.Engine.Execution;
using AgentPlatform.Engine.Llm;
using AgentPlatform.Engine.Routing;
using AgentPlatform.Engine.Tools;
using AgentPlatform.Engine.Telemetry;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;

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
    AgentDbContext db, AgentRegistry agents, AgentRouter router, TaskExecutor executor, TaskEvents events, ILogger<TaskRunner> logger)
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
        await agents.EnsureLoadedAsync();
        return await ExecuteAsync(task, await CallerOfAsync(task.ApiKeyId), onCancel, cancellationToken);
    }

    /// <summary>
    /// Runs a task its caller has just stored as running (the Api's sync path), saving the load and
    /// claim round trips; nobody long-polls a sync task, so no change signals are sent either.
    /// </summary>
    public async Task<AgentTask> RunClaimedAsync(AgentTask task, ToolCaller caller, CancellationToken cancellationToken)
    {
        using var scope = logger.BeginScope(new Dictionary<string, object> { ["TaskId"] = task.Id, ["ApiKeyId"] = task.ApiKeyId });
        return (await ExecuteAsync(task, caller, CancellationOutcome.Cancel, cancellationToken))!;
    }

    private async Task<AgentTask?> ExecuteAsync(AgentTask task, ToolCaller caller, CancellationOutcome onCancel, CancellationToken cancellationToken)
    {
        using var activity = StartActivity(task);
        // The decision was made (and shown to the client) when the task was accepted; an old task without one is routed now.
        var decision = TaskRouting.FromJson(task.RoutingJson)?.Decision
            ?? await router.RouteAsync(task.Input, task.Agent, null, null, _ => true, cancellationToken);
        using var toolCalls = ToolCallLog.Begin();
        var clock = Stopwatch.StartNew();
        try
        {
            var result = await executor.ExecuteAsync(decision, task.Input, task.ContextJson, caller, cancellationToken);
            var winner = result.Winner;
            var routing = new TaskRouting(decision, result.Runs).ToJson();
            var calls = ToolCallsJson(toolCalls.Log);
            if (winner is not null)
            {
                return await FinishAsync(task, TaskStatus.Completed, winner.Agent, winner.Text, null, winner.Model, result, routing, calls, clock.Elapsed);
            }
            var error = result.Runs.Count == 0
                ? $"Agent '{decision.Agent}' no longer exists."
                : string.Join(" ", result.Runs.Select(r => r.Error).Where(e => e is not null).Distinct());
            activity?.SetStatus(ActivityStatusCode.Error, error);
            return await FinishAsync(task, TaskStatus.Failed, decision.Agent, null, error, null, result, routing, calls, clock.Elapsed);
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
            return await FinishAsync(task, TaskStatus.Cancelled, task.Agent, null, "The client closed the request before the task finished.",
                null, null, task.RoutingJson, ToolCallsJson(toolCalls.Log), clock.Elapsed);
        }
    }

    private async Task<ToolCaller> CallerOfAsync(Guid keyId)
    {
        if (keyId == Guid.Empty) return new ToolCaller(keyId, null, IsAdmin: true);
        var key = await db.ApiKeys.AsNoTracking().Where(k => k.Id == keyId && k.RevokedAt == null)
            .Select(k => new { k.AllowedTools }).FirstOrDefaultAsync();
        // Fail closed: a key that is gone (deleted, or revoked since the task was queued) gets no tools, never every tool.
        return new ToolCaller(keyId, key is null ? [] : key.AllowedTools, IsAdmin: false);
    }

    private static string? ToolCallsJson(ToolCallLog log) =>
        log.Calls.Count == 0 ? null : System.Text.Json.JsonSerializer.Serialize(log.Calls, TaskRouting.Json);

    private async Task<AgentTask?> FinishAsync(AgentTask task, string status, string agent, string? result, string? error, string? model,
        ExecutionResult? execution, string? routing, string? toolCalls, TimeSpan elapsed)
    {
        task.Status = status;
        task.Agent = agent;
        task.Result = result;
        task.Error = error;
        task.Model = model;
        task.PromptTokens = (int?)execution?.PromptTokens;
        task.CompletionTokens = (int?)execution?.CompletionTokens;
        task.CostUsd = execution?.CostUsd;
        task.DurationMs = (long)elapsed.TotalMilliseconds;
        task.Strategy = execution?.Strategy ?? task.Strategy;
        task.RoutingJson = routing;
        task.ToolCallsJson = toolCalls;
        task.CompletedAt = DateTimeOffset.UtcNow;

        // Only the run that holds the task (status running) may finish it.
        var updated = await db.Tasks.Where(t => t.Id == task.Id && t.Status == TaskStatus.Running)
            .ExecuteUpdateAsync(s => s
                .SetProperty(t => t.Status, task.Status)
                .SetProperty(t => t.Agent, task.Agent)
                .SetProperty(t => t.Result, task.Result)
                .SetProperty(t => t.Error, task.Error)
                .SetProperty(t => t.Model, task.Model)
                .SetProperty(t => t.PromptTokens, task.PromptTokens)
                .SetProperty(t => t.CompletionTokens, task.CompletionTokens)
                .SetProperty(t => t.CostUsd, task.CostUsd)
                .SetProperty(t => t.DurationMs, task.DurationMs)
                .SetProperty(t => t.Strategy, task.Strategy)
                .SetProperty(t => t.RoutingJson, task.RoutingJson)
                .SetProperty(t => t.ToolCallsJson, task.ToolCallsJson)
                .SetProperty(t => t.CompletedAt, task.CompletedAt), CancellationToken.None);
        if (updated == 0) return await ReloadAsync(task.Id); // cancelled or taken over meanwhile

        PlatformTelemetry.RecordTask(agent, status, elapsed);
        logger.LogInformation("Task {TaskId} {Status} by {Agent} ({Strategy}) in {DurationMs} ms ({PromptTokens}+{CompletionTokens} tokens, ${CostUsd})",
            task.Id, status, agent, task.Strategy, task.DurationMs, task.PromptTokens, task.CompletionTokens, task.CostUsd);
        if (task.IsAsync) await events.PublishAsync(task.Id);
        return task;
    }

    private Task<AgentTask?> ReloadAsync(Guid id) =>
        db.Tasks.AsNoTracking().FirstOrDefaultAsync(t => t.Id == id, CancellationToken.None);

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
}
