using System.Linq.Expressions;
using System.Diagnostics;
using AgentPlatform.Engine.Admission;
using AgentPlatform.Engine.Agents;
using AgentPlatform.Engine.Caching;
using AgentPlatform.Engine.Conversations;
using AgentPlatform.Engine.Data;
using AgentPlatform.Engine.Execution;
using AgentPlatform.Engine.Infrastructure;
using AgentPlatform.Engine.Llm;
using AgentPlatform.Engine.Routing;
using AgentPlatform.Engine.Tools;
using AgentPlatform.Engine.Telemetry;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

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
/// Each run claims the task with a lease of its own (<see cref="TaskLease"/>): a second runner (a Hangfire retry,
/// a re-fetched or duplicate job) backs off while the first one lives, and takes over only once its lease expired.
/// Every state change is a conditional update on the lease, so a task never completes twice.
/// </summary>
public sealed class TaskRunner(
    AgentDbContext db, AgentRegistry agents, AgentRouter router, TaskExecutor executor, TaskEvents events, TaskLeases leases,
    ConversationService conversations, ConversationStore history, ResponseCache cache, SpendGate spend, TaskWriteBehind writeBehind,
    RedisWritesBehind redisWrites, TaskCallers callers, TaskResults results, NpgsqlDataSource dataSource, IOptions<QueueOptions> queue,
    ILogger<TaskRunner> logger)
{
    /// <summary>Runs a stored task (the Worker's path): claims it, loading it in the same statement, and executes it.</summary>
    public async Task<AgentTask?> RunAsync(Guid taskId, CancellationOutcome onCancel, CancellationToken cancellationToken)
    {
        if ((await ClaimAsync([taskId])).SingleOrDefault() is { } task) return await RunClaimedFromQueueAsync(task, onCancel, cancellationToken);
        var unclaimed = await db.Tasks.AsNoTracking().FirstOrDefaultAsync(t => t.Id == taskId, cancellationToken);
        if (unclaimed is null)
        {
            logger.LogWarning("Task {TaskId} does not exist; nothing to run", taskId);
            return null;
        }
        if (unclaimed.IsFinal)
        {
            logger.LogInformation("Task {TaskId} is already {Status}; not running it again", unclaimed.Id, unclaimed.Status);
            return unclaimed;
        }
        return await GiveUpOrBackOffAsync(taskId, queue.Value.MaxAttempts);
    }

    /// <summary>
    /// Claims the claimable ones of these tasks in one statement, each under a lease of its own, and returns them as claimed
    /// (one round trip for the common case, queued tasks). A task not returned is final, held by a live run, out of
    /// attempts or gone: <see cref="RunAsync"/> tells which. The conditions are <see cref="Claimable"/>'s.
    /// </summary>
    public async Task<List<AgentTask>> ClaimAsync(Guid[] taskIds)
    {
        var (lease, maxAttempts) = (queue.Value.LeaseDuration, queue.Value.MaxAttempts);
        var startedAt = DateTimeOffset.UtcNow;
        // The rows are locked in id order first (TaskResults says why).
        return await db.Tasks.FromSql($"""
                WITH locked AS MATERIALIZED (SELECT "Id" FROM agent_tasks WHERE "Id" = ANY({taskIds}) ORDER BY "Id" FOR UPDATE)
                UPDATE agent_tasks SET "Status" = {TaskStatus.Running}, "StartedAt" = {startedAt}, "Attempts" = "Attempts" + 1,
                    "LeaseOwner" = gen_random_uuid(), "LeaseExpiresAt" = now() + {lease}
                WHERE "Id" IN (SELECT "Id" FROM locked) AND "Attempts" < {maxAttempts} AND ("Status" = {TaskStatus.Queued}
                    OR ("Status" = {TaskStatus.Running} AND ("LeaseExpiresAt" IS NULL OR "LeaseExpiresAt" < now())))
                RETURNING *
                """).AsNoTracking().ToListAsync(CancellationToken.None);
    }

    /// <summary>Runs a task <see cref="ClaimAsync"/> returned: announces the start, keeps its lease and executes it.</summary>
    public async Task<AgentTask?> RunClaimedFromQueueAsync(AgentTask task, CancellationOutcome onCancel, CancellationToken cancellationToken)
    {
        var owner = task.LeaseOwner ?? throw new InvalidOperationException("A claimed task has a lease owner.");
        using var scope = logger.BeginScope(new Dictionary<string, object> { ["TaskId"] = task.Id, ["ApiKeyId"] = task.ApiKeyId });
        await events.PublishAsync(task.Id, owner);

        await using var held = leases.Keep(task.Id, owner);
        if (await CallerOfAsync(task.ApiKeyId) is not { } caller)
        {
            return await FinishAsync(task, TaskStatus.Failed, task.Agent, null, "The API key that submitted this task was revoked; it was not run.",
                null, null, null, null, TimeSpan.Zero);
        }
        await agents.EnsureLoadedAsync();
        return await ExecuteAsync(task, caller, onCancel, held, cancellationToken);
    }

    /// <summary>
    /// Runs a sync task in the request that submitted it (the Api's sync path): one its caller has just stored as running
    /// under its lease, or one <see cref="AgentTask.WrittenBehind"/> (stored when it finishes). Either way the load and claim
    /// round trips are saved; nobody long-polls a sync task, so no change signals are sent either.
    /// </summary>
    /// <param name="input">What the run is asked when it is more than the stored task (a stream, the client's own messages).</param>
    /// <param name="requests">
    /// The request limit to check in the run's admission round trip (a task written behind: nothing was stored before it);
    /// the decision is on <see cref="AgentTask.RequestLimit"/>.
    /// </param>
    public async Task<AgentTask> RunClaimedAsync(AgentTask task, ToolCaller caller, CancellationToken cancellationToken, RunInput? input = null,
        RequestCheck? requests = null)
    {
        using var scope = logger.BeginScope(new Dictionary<string, object> { ["TaskId"] = task.Id, ["ApiKeyId"] = task.ApiKeyId });
        if (task.WrittenBehind) return (await ExecuteAsync(task, caller, CancellationOutcome.Cancel, null, cancellationToken, input, requests))!;
        await using var held = leases.Keep(task.Id, task.LeaseOwner ?? throw new InvalidOperationException("A claimed task has a lease owner."));
        return (await ExecuteAsync(task, caller, CancellationOutcome.Cancel, held, cancellationToken, input))!;
    }

    /// <summary>Queued, or running under a lease that lapsed (its run died). DateTimeOffset.UtcNow is Postgres's now() here.</summary>
    private static readonly Expression<Func<AgentTask, bool>> Claimable = t => t.Status == TaskStatus.Queued
        || (t.Status == TaskStatus.Running && (t.LeaseExpiresAt == null || t.LeaseExpiresAt < DateTimeOffset.UtcNow));

    /// <summary>The claim failed: the task is final, held by a live run, or out of attempts (then it fails, once).</summary>
    private async Task<AgentTask?> GiveUpOrBackOffAsync(Guid taskId, int maxAttempts)
    {
        var failed = await db.Tasks.Where(t => t.Id == taskId).Where(Claimable).Where(t => t.Attempts >= maxAttempts)
            .ExecuteUpdateAsync(s => s
                .SetProperty(t => t.Status, TaskStatus.Failed)
                .SetProperty(t => t.Error, QueueMaintenanceJob.GaveUp(maxAttempts))
                .SetProperty(t => t.LeaseOwner, (Guid?)null)
                .SetProperty(t => t.LeaseExpiresAt, (DateTimeOffset?)null)
                .SetProperty(t => t.CompletedAt, DateTimeOffset.UtcNow), CancellationToken.None);
        var task = await ReloadAsync(taskId);
        if (failed > 0)
        {
            logger.LogWarning("Task {TaskId} failed: no attempts left after {Attempts} runs", taskId, maxAttempts);
            PlatformTelemetry.RecordTask(task?.Agent ?? "", TaskStatus.Failed, TimeSpan.Zero);
            await events.PublishAsync(taskId);
        }
        else if (task is { IsFinal: false })
        {
            logger.LogInformation("Task {TaskId} is held by another live run; not running it twice", taskId);
        }
        return task;
    }

    /// <param name="held">The run's lease; null for a task written behind (nobody else can see it).</param>
    private async Task<AgentTask?> ExecuteAsync(AgentTask task, ToolCaller caller, CancellationOutcome onCancel, TaskLease? held,
        CancellationToken cancellationToken, RunInput? input = null, RequestCheck? requests = null)
    {
        using var activity = StartActivity(task);
        using var usage = Billing.UsageScope.Begin(task.ApiKeyId, task.Id, task.SessionId);
        using var run = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, held?.Lost ?? CancellationToken.None);
        // The decision was made (and shown to the client) when the task was accepted; an old task without one is routed now.
        using var toolCalls = ToolCallLog.Begin();
        var clock = Stopwatch.StartNew();
        SpendReservation? reservation = null;
        RunCancelledException? interrupted = null;
        try
        {
            var decision = task.ReadRouting()?.Decision
                ?? await router.RouteAsync(task.Input, task.Agent, null, null, _ => true, run.Token);
            input ??= new RunInput(task.Input) { ContextJson = task.ContextJson };
            var turn = task.SessionId is null ? null : await conversations.PrepareAsync(task, decision, input, caller.User, run.Token);
            if (turn is not null)
            {
                activity?.SetTag("conversation.history.messages", turn.Window.MessagesSent);
                activity?.SetTag("conversation.history.tokens", turn.Window.HistoryTokens);
                activity?.SetTag("conversation.history.summarized", turn.Window.MessagesSummarized);
                activity?.SetTag("conversation.context_window", turn.Window.ContextWindow);
            }
            var asked = turn?.Input ?? input;
            // Admission in one Redis round trip: the request limit (when the request left it to the run), the exact cache, and
            // for a miss the tokens and budget it reserves before any LLM call (a hit spends nothing); settled when the run ends.
            var probe = cache.Probe(task, decision, asked, caller);
            var runAgents = decision.Agents.Select(agents.Find).OfType<AgentDefinition>()
                .Take(decision.Strategy == Strategies.Single ? 1 : int.MaxValue).ToList();
            var admission = await spend.AdmitAsync(task.ApiKeyId, spend.LimitsFor(caller.Account, runAgents), runAgents, asked, run.Token,
                requests, probe.ExactKey);
            task.RequestLimit = admission.Requests;
            if (admission.RequestRefused)
            {
                // Refused before it was stored (only a task written behind leaves its request limit to the run): no row.
                task.Refusal = SpendRefusal.Requests(admission.Requests!.Value);
                task.Status = TaskStatus.Failed;
                task.Error = task.Refusal.Message;
                return task;
            }
            reservation = admission.Reservation;
            var degrade = admission.Degrade;
            // A hit completes the task with the cached answer: no LLM call, no tokens, no cost. A run refused by its limits may
            // still be answered by the semantic tier, at no cost. The outcome is on the task before anything is streamed, so a
            // streaming endpoint can name it in its headers.
            var cached = admission.Refusal is null || probe.Semantic ? await cache.CompleteAsync(probe, admission.CachedAnswer, run.Token) : probe.Decided ?? CacheLookup.NotCacheable;
            task.CacheOutcome = cached.Outcome;
            if (admission.Refusal is { } refusal && !cached.IsHit)
            {
                task.CacheOutcome = probe.Decided?.Outcome ?? CacheOutcomes.Miss;
                if (refusal.Kind == "unavailable" && onCancel == CancellationOutcome.Requeue && held is not null)
                {
                    await RequeueAsync(task, held);
                    throw new SpendUnavailableException(refusal.Message);
                }
                activity?.SetStatus(ActivityStatusCode.Error, refusal.Message);
                var refused = await FinishAsync(task, TaskStatus.Failed, decision.Agent, null, refusal.Message, null, null, null, null,
                    clock.Elapsed);
                if (refused is not null) refused.Refusal = refusal;
                return refused;
            }

            var result = cached.IsHit
                ? await cache.ServeAsync(cached, asked, run.Token)
                : await executor.ExecuteAsync(decision, degrade ? asked with { PreferCheaperModels = true } : asked, caller, run.Token);
            var winner = result.Winner;
            var routing = new TaskRouting(decision, result.Runs);
            var calls = ToolCallsJson(toolCalls.Log);
            if (winner is not null)
            {
                // Stored before the task is seen completed, so whoever reads the completion finds the answer cached. A degraded
                // answer came from a cheaper model than the chain's own order: not one to serve others.
                if (!degrade) await cache.StoreAsync(cached, result, asked);
                return await FinishAsync(task, TaskStatus.Completed, winner.Agent, winner.Text, null, winner.Model, result, routing, calls, clock.Elapsed,
                    turn: turn);
            }
            var error = result.Runs.Count == 0
                ? $"Agent '{decision.Agent}' no longer exists."
                : string.Join(" ", result.Runs.Select(r => r.Error).Where(e => e is not null).Distinct());
            activity?.SetStatus(ActivityStatusCode.Error, error);
            return await FinishAsync(task, TaskStatus.Failed, decision.Agent, null, error, null, result, routing, calls, clock.Elapsed);
        }
        catch (OperationCanceledException e) when (held is { Lost.IsCancellationRequested: true } && !cancellationToken.IsCancellationRequested)
        {
            interrupted = e as RunCancelledException;
            // Cancelled by the client, or taken over after this run's lease lapsed: the row says which. A cancelled task
            // records what its answered calls cost.
            logger.LogInformation("Task {TaskId} is no longer this run's; stopped after {Elapsed} ms", task.Id, clock.ElapsedMilliseconds);
            await RecordSpendIfCancelledAsync(task.Id, e, toolCalls.Log);
            return await ReloadAsync(task.Id);
        }
        catch (OperationCanceledException e) when (cancellationToken.IsCancellationRequested)
        {
            interrupted = e as RunCancelledException;
            if (onCancel == CancellationOutcome.Requeue && held is not null)
            {
                await RequeueAsync(task, held);
                await RecordSpendIfCancelledAsync(task.Id, e, toolCalls.Log); // the job was stopped because the client cancelled
                throw;
            }
            return await FinishAsync(task, TaskStatus.Cancelled, task.Agent, null, "The client closed the request before the task finished.",
                null, null, null, ToolCallsJson(toolCalls.Log), clock.Elapsed, e as RunCancelledException);
        }
        finally
        {
            if (reservation is not null)
            {
                // What the run really used: the finished task's figures, or what an interrupted run had spent. Sent before the
                // answer, not awaited: this process's next admission runs after it in Redis (RedisWritesBehind says why).
                var tokens = task.IsFinal ? (task.PromptTokens ?? 0) + (task.CompletionTokens ?? 0) : (interrupted?.InputTokens ?? 0) + (interrupted?.OutputTokens ?? 0);
                redisWrites.Track(spend.SettleAsync(reservation, tokens, task.IsFinal ? task.CostUsd ?? 0m : interrupted?.CostUsd ?? 0m));
            }
        }
    }

    /// <summary>
    /// Back to the queue (shutdown, job deletion, spend limits unavailable): only a task still this run's (a task the client
    /// cancelled stays cancelled), and the interrupted run does not count against its attempts.
    /// </summary>
    private async Task RequeueAsync(AgentTask task, TaskLease held)
    {
        await db.Tasks.Where(t => t.Id == task.Id && t.Status == TaskStatus.Running && t.LeaseOwner == held.Owner)
            .ExecuteUpdateAsync(s => s
                .SetProperty(t => t.Status, TaskStatus.Queued)
                .SetProperty(t => t.Attempts, t => t.Attempts - 1)
                .SetProperty(t => t.LeaseOwner, (Guid?)null)
                .SetProperty(t => t.LeaseExpiresAt, (DateTimeOffset?)null), CancellationToken.None);
        logger.LogInformation("Task {TaskId} interrupted; back in the queue", task.Id);
    }

    /// <summary>A task the client cancelled records what the run's answered calls cost before the cancel.</summary>
    private async Task RecordSpendIfCancelledAsync(Guid taskId, OperationCanceledException cancellation, ToolCallLog toolCalls)
    {
        if (cancellation is not RunCancelledException spent) return;
        await db.Tasks.Where(t => t.Id == taskId && t.Status == TaskStatus.Cancelled && t.CostUsd == null)
            .ExecuteUpdateAsync(s => s
                .SetProperty(t => t.PromptTokens, (int)spent.InputTokens)
                .SetProperty(t => t.CompletionTokens, (int)spent.OutputTokens)
                .SetProperty(t => t.CostUsd, spent.CostUsd)
                .SetProperty(t => t.ToolCallsJson, ToolCallsJson(toolCalls)), CancellationToken.None);
    }

    /// <summary>Who the task runs for, in one lookup (cached by <see cref="TaskCallers"/>); null when its key was revoked since the task was queued.</summary>
    private Task<ToolCaller?> CallerOfAsync(Guid keyId) =>
        keyId == Guid.Empty ? Task.FromResult<ToolCaller?>(new ToolCaller(keyId, null, IsAdmin: true)) : callers.FindAsync(keyId, () => LoadCallerAsync(keyId));

    private async Task<ToolCaller?> LoadCallerAsync(Guid keyId)
    {
        var key = await db.ApiKeys.AsNoTracking().Where(k => k.Id == keyId)
            .Select(k => new { k.RevokedAt, k.AllowedTools, k.Tier, k.TpmLimit, k.DailyBudgetUsd }).FirstOrDefaultAsync();
        if (key?.RevokedAt is not null) return null;
        // Fail closed: a key whose row is gone gets no tools, never every tool (and no tier, so no key limits to hold).
        return new ToolCaller(keyId, key is null ? [] : key.AllowedTools, IsAdmin: false,
            Account: key is null ? new SpendAccount("", null, null) : new SpendAccount(key.Tier, key.TpmLimit, key.DailyBudgetUsd));
    }

    private static string? ToolCallsJson(ToolCallLog log) =>
        log.Calls.Count == 0 ? null : System.Text.Json.JsonSerializer.Serialize(log.Calls, TaskRouting.Json);

    /// <param name="routing">The routing with the runs made; null leaves the task's as it is.</param>
    private async Task<AgentTask?> FinishAsync(AgentTask task, string status, string agent, string? result, string? error, string? model,
        ExecutionResult? execution, TaskRouting? routing, string? toolCalls, TimeSpan elapsed, RunCancelledException? spent = null,
        ConversationTurn? turn = null)
    {
        task.Status = status;
        task.Agent = agent;
        task.Result = result;
        task.Error = error;
        task.Model = model;
        task.PromptTokens = (int?)(execution?.PromptTokens ?? spent?.InputTokens);
        task.CompletionTokens = (int?)(execution?.CompletionTokens ?? spent?.OutputTokens);
        task.CostUsd = execution?.CostUsd ?? spent?.CostUsd;
        task.DurationMs = (long)elapsed.TotalMilliseconds;
        task.Strategy = execution?.Strategy ?? task.Strategy;
        if (routing is not null)
        {
            // A task written behind has its JSON made by the batch writer (RoutingJsonToStore), off the request.
            task.Routing = routing;
            task.RoutingJson = task.WrittenBehind ? null : routing.ToJson();
        }
        task.ToolCallsJson = toolCalls;
        task.CompletedAt = DateTimeOffset.UtcNow;

        if (task.WrittenBehind)
        {
            // Nobody else could claim it: no conditional update, the row is written in the next batch.
            task.LeaseOwner = null;
            writeBehind.Add(task);
            Finished(task, elapsed);
            return task;
        }

        // Only the run that holds the task may finish it. A failure to record the result (a database blip) is retried
        // here, with the result in hand, instead of failing the job and calling the LLM again.
        var deadline = DateTimeOffset.UtcNow + queue.Value.RecordResultTimeout;
        var delay = TimeSpan.FromMilliseconds(250);
        int updated;
        AppendedTurn? appended = null;
        while (true)
        {
            try
            {
                // A plain task's result is written with other runs' results, in one statement (same condition per row).
                if (turn is null)
                {
                    updated = await results.RecordAsync(task) ? 1 : 0;
                    break;
                }
                // A completed chat turn is stored with the task's result, in one transaction: both or neither.
                appended = null;
                await using var transaction = await db.Database.BeginTransactionAsync(CancellationToken.None);
                // Still this run's: running under its lease, or handed back to the queue by the sweep (its lease lapsed
                // during an outage) but not claimed by another run since (that would have counted an attempt).
                updated = await db.Tasks.Where(t => t.Id == task.Id
                        && ((t.Status == TaskStatus.Running && t.LeaseOwner == task.LeaseOwner)
                            || (t.Status == TaskStatus.Queued && t.LeaseOwner == null && t.Attempts == task.Attempts)))
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
                        .SetProperty(t => t.CacheOutcome, task.CacheOutcome)
                        .SetProperty(t => t.LeaseOwner, task.LeaseOwner)
                        .SetProperty(t => t.LeaseExpiresAt, (DateTimeOffset?)null)
                        .SetProperty(t => t.CompletedAt, task.CompletedAt), CancellationToken.None);
                if (updated > 0)
                {
                    appended = await history.AppendTurnAsync(turn.KeyId, turn.SessionId, turn.UserMessage,
                        new StoredMessage(task.Id, 0, "assistant", result ?? "", agent, model, task.Id, task.CompletedAt.Value));
                }
                await transaction.CommitAsync(CancellationToken.None);
                break;
            }
            catch (Exception e) when (e is NpgsqlException or InvalidOperationException { InnerException: NpgsqlException }
                                      && DateTimeOffset.UtcNow < deadline)
            {
                logger.LogWarning("Could not record the result of task {TaskId} ({Message}); retrying", task.Id, e.Message);
                PostgresPools.ClearAfter(e, dataSource);
                await Task.Delay(delay);
                delay = TimeSpan.FromMilliseconds(Math.Min(2000, delay.TotalMilliseconds * 2));
            }
        }
        if (updated == 0) return await ReloadAsync(task.Id); // cancelled or taken over meanwhile
        if (appended is not null) await history.PublishAsync(appended);

        Finished(task, elapsed);
        if (task.IsAsync) await events.PublishAsync(task.Id, task.LeaseOwner);
        return task;
    }

    private void Finished(AgentTask task, TimeSpan elapsed)
    {
        PlatformTelemetry.RecordTask(task.Agent, task.Status, elapsed);
        // Debug for sync tasks: at gateway rates a line per request costs more than the request; the trace and the
        // agent_tasks metrics carry it. Async tasks (a few per second, looked for later) keep their line.
        logger.Log(task.IsAsync ? LogLevel.Information : LogLevel.Debug,
            "Task {TaskId} {Status} by {Agent} ({Strategy}) in {DurationMs} ms ({PromptTokens}+{CompletionTokens} tokens, ${CostUsd})",
            task.Id, task.Status, task.Agent, task.Strategy, task.DurationMs, task.PromptTokens, task.CompletionTokens, task.CostUsd);
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
