using Hangfire;
using System.Diagnostics;
using System.Security.Claims;
using AgentPlatform.Api.Admission;
using AgentPlatform.Engine.Admission;
using AgentPlatform.Api.Auth;
using AgentPlatform.Engine.Agents;
using AgentPlatform.Engine.Caching;
using AgentPlatform.Engine.Routing;
using AgentPlatform.Engine.Data;
using AgentPlatform.Engine.Tasks;
using AgentPlatform.Engine.Webhooks;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using TaskStatus = AgentPlatform.Engine.Tasks.TaskStatus;

namespace AgentPlatform.Api.Apis;

/// <summary>The task API of the seed 002 service: execute (sync or async), status, cancel, feedback.</summary>
public static class AgentTaskApi
{
    public const int MaxWaitSeconds = 60;

    public static IEndpointRouteBuilder MapAgentTaskApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/agent")
            .WithTags("Tasks")
            .RequireAuthorization()
            .AddEndpointFilter<RateLimitFilter>();

        api.MapPost("/execute", ExecuteAsync)
            .WithMetadata(new RunsTaskMetadata())
            .AddEndpointFilter<PromptInjectionFilter>()
            .WithName("ExecuteTask")
            .WithSummary("Run a task on an agent, synchronously (200) or in the background (202)")
            .WithDescription("Send an Idempotency-Key header to make retries safe: the same key returns the same task.");

        api.MapGet("/status/{taskId:guid}", GetStatusAsync)
            .WithName("GetTaskStatus")
            .WithSummary("A task's status and, once final, its result; ?wait=N long-polls up to N seconds");

        api.MapPost("/tasks/{taskId:guid}/cancel", CancelAsync)
            .WithName("CancelTask")
            .WithSummary("Cancel a queued or running task");

        api.MapPost("/feedback", SubmitFeedbackAsync)
            .WithName("SubmitFeedback")
            .WithSummary("Rate one of your tasks from 1 to 5");

        return app;
    }

    /// <summary>What the task handlers need, as one scoped service (not a validated [AsParameters] type).</summary>
    public sealed class TaskServices(AgentDbContext db, AgentRegistry agents, AgentRouter router, AgentStats stats, TaskQueue queue,
        TaskRunner runner, TaskEvents events, TaskLeases leases, TaskWriteBehind writeBehind, RequestRateLimiter requests,
        ILogger<TaskServices> logger)
    {
        public RequestRateLimiter Requests { get; } = requests;
        public TaskWriteBehind WriteBehind { get; } = writeBehind;
        public ILogger Logger { get; } = logger;
        public TaskLeases Leases { get; } = leases;
        public AgentDbContext Db { get; } = db;
        public AgentRegistry Agents { get; } = agents;
        public AgentRouter Router { get; } = router;
        public AgentStats Stats { get; } = stats;
        public TaskQueue Queue { get; } = queue;
        public TaskRunner Runner { get; } = runner;
        public TaskEvents Events { get; } = events;
    }

    public static async Task<Results<Ok<ExecuteResponse>, Accepted<AcceptedResponse>, ProblemHttpResult, ValidationProblem>> ExecuteAsync(
        ExecuteRequest request,
        [FromHeader(Name = "Idempotency-Key")] string? idempotencyKey,
        [FromServices] TaskServices services,
        [FromServices] WebhookTargets webhooks,
        ClaimsPrincipal user,
        HttpContext http)
    {
        var submission = await SubmitAsync(request, idempotencyKey, services, webhooks, user.GetCaller(), http);
        if (submission.Outcome is { } outcome) return outcome;
        var task = submission.Task!;
        if (task.IsAsync) return Accepted(task);
        var done = await services.Runner.RunClaimedAsync(task, user.GetCaller().ToToolCaller(), http.RequestAborted, requests: submission.Requests);
        SetRunHeaders(http, done);
        return SyncOutcome(done, http);
    }

    /// <summary>
    /// <c>X-Cache: HIT|SEMANTIC|MISS</c> (whether the run's answer came from the response cache, and which tier), and the
    /// X-RateLimit headers when the run's admission checked the request limit.
    /// </summary>
    public static void SetRunHeaders(HttpContext http, AgentTask task)
    {
        http.Response.Headers["X-Cache"] = CacheOutcomes.Header(task.CacheOutcome);
        if (task.RequestLimit is { } requests) RateLimitFilter.Apply(http, requests);
    }

    /// <summary><c>"cache": false</c> in the body, or <c>Cache-Control: no-cache</c> (or <c>no-store</c>) on the request.</summary>
    private static bool BypassesCache(ExecuteRequest request, HttpContext http) =>
        request.Cache == false || http.Request.GetTypedHeaders().CacheControl is { NoCache: true } or { NoStore: true };

    /// <summary>
    /// A task ready to run (sync: claimed by this request, or written behind; async: queued), or the answer instead of one.
    /// <see cref="Requests"/>: the request limit the run's admission checks (a task written behind).
    /// </summary>
    public sealed record Submission(AgentTask? Task,
        Results<Ok<ExecuteResponse>, Accepted<AcceptedResponse>, ProblemHttpResult, ValidationProblem>? Outcome)
    {
        public RequestCheck? Requests { get; init; }
    }

    /// <summary>
    /// Everything a task goes through before it runs — agent checks, idempotency, routing, the stored task, the queue — shared
    /// by /agent/execute, the chat endpoints and the OpenAI-compatible API, so none of them skips a step.
    /// </summary>
    public static async Task<Submission> SubmitAsync(ExecuteRequest request, string? idempotencyKey, TaskServices services,
        WebhookTargets webhooks, Caller caller, HttpContext http)
    {
        // A plain sync task (no session, no Idempotency-Key) is stored once it finished, in a batch: the request does not wait
        // for Postgres, and its request limit is checked with its admission. The others are stored first, after the request
        // limit: an async task must be durable before it is accepted, a chat turn is written with its messages, and an
        // Idempotency-Key needs its row to answer a retry.
        var writtenBehind = !request.AsyncExecution && request.SessionId is null && idempotencyKey is null && services.WriteBehind.Accepting;
        var requests = RateLimitFilter.TakeDeferred(http);
        if (requests is not null && !writtenBehind)
        {
            var counted = await services.Requests.AcquireAsync(requests.KeyId, requests.Limit);
            RateLimitFilter.Apply(http, counted);
            if (!counted.Allowed) return Refuse(RateLimitFilter.TooMany(counted));
            requests = null;
        }
        if (idempotencyKey is { Length: > 200 } || idempotencyKey is { Length: 0 })
            return Refuse(TypedResults.ValidationProblem(new Dictionary<string, string[]>
            {
                ["Idempotency-Key"] = ["The Idempotency-Key header must be 1 to 200 characters."],
            }));
        if (request.WebhookUrl is not null && WebhookRefusal(request.WebhookUrl, caller, webhooks) is { } refusal)
            return Refuse(TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["webhook_url"] = [refusal] }));
        if (Engine.Conversations.ConversationRules.SessionIdError(request.SessionId) is { } sessionError)
            return Refuse(TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["session_id"] = [sessionError] }));

        var auto = string.IsNullOrWhiteSpace(request.AgentType) || string.Equals(request.AgentType, AgentRegistry.Auto, StringComparison.OrdinalIgnoreCase);
        var named = (auto ? [] : new[] { request.AgentType! }).Concat(request.Agents ?? []).ToList();
        var unknown = named.Where(n => services.Agents.Find(n) is null).ToList();
        if (unknown.Count > 0)
            return Refuse(TypedResults.ValidationProblem(new Dictionary<string, string[]>
            {
                [request.Agents?.Intersect(unknown).Any() == true ? "agents" : "agent_type"] =
                    [$"Unknown agent '{unknown[0]}'. Known agents: {string.Join(", ", services.Agents.Current.All.Select(a => a.Name))}, or 'auto'."],
            }));
        var refused = named.FirstOrDefault(n => !caller.MayUseAgent(n));
        if (refused is not null)
            return Refuse(TypedResults.Problem(statusCode: 403, title: "Agent not allowed",
                detail: $"This API key may not use the agent '{services.Agents.Find(refused)!.Name}'."));

        // Only an Idempotency-Key needs the request's fingerprint (a replay with another body is refused).
        var hash = idempotencyKey is null ? null : RequestHash.Of(request);
        if (idempotencyKey is not null && await FindByIdempotencyKeyAsync(services.Db, caller.KeyId, idempotencyKey) is { } existing)
            return Refuse(Replay(existing, hash!, http));

        var decision = await services.Router.RouteAsync(request.Task, request.AgentType, request.Strategy, request.Agents,
            caller.MayUseAgent, http.RequestAborted, caller.KeyId);
        // "auto" with allowed_agents: [] (or a list none of whose agents exists any more) leaves the router nobody to choose.
        var notAllowed = decision.Agents.Prepend(decision.Agent).FirstOrDefault(a => !caller.MayUseAgent(a));
        if (notAllowed is not null)
            return Refuse(TypedResults.Problem(statusCode: 403, title: "Agent not allowed",
                detail: caller.AllowedAgents is { Length: 0 }
                    ? "This API key may use no agent: its allowed_agents list is empty."
                    : $"This API key may not use the agent '{notAllowed}', and no agent it may use can take this task."));
        var task = new AgentTask
        {
            Id = Guid.CreateVersion7(),
            ApiKeyId = caller.KeyId,
            Agent = decision.Agent,
            Strategy = decision.Strategy,
            Routing = new TaskRouting(decision, null),
            // A task written behind gets its JSON from the batch writer; a stored one now, for its INSERT.
            RoutingJson = writtenBehind ? null : new TaskRouting(decision, null).ToJson(),
            Input = request.Task,
            ContextJson = request.Context?.ToJsonString(),
            Priority = request.Priority,
            SessionId = request.SessionId,
            WebhookUrl = request.WebhookUrl,
            IsAsync = request.AsyncExecution,
            // A sync task runs right here, so it is stored already claimed, under this request's lease.
            Status = request.AsyncExecution ? TaskStatus.Queued : TaskStatus.Running,
            StartedAt = request.AsyncExecution ? null : DateTimeOffset.UtcNow,
            Attempts = request.AsyncExecution ? 0 : 1,
            LeaseOwner = request.AsyncExecution || writtenBehind ? null : Guid.NewGuid(),
            LeaseExpiresAt = request.AsyncExecution || writtenBehind ? null : DateTimeOffset.UtcNow + services.Leases.Duration,
            CacheOutcome = BypassesCache(request, http) ? CacheOutcomes.Bypass : null,
            IdempotencyKey = idempotencyKey,
            RequestHash = hash,
            TraceParent = Activity.Current?.Id,
            CreatedAt = DateTimeOffset.UtcNow,
            WrittenBehind = writtenBehind,
        };
        if (writtenBehind) return new Submission(task, null) { Requests = requests };
        services.Db.Tasks.Add(task);
        try
        {
            await services.Db.SaveChangesAsync(CancellationToken.None);
        }
        catch (DbUpdateException e) when (e.InnerException is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation })
        {
            // Two retries with one Idempotency-Key raced; the first one's task is the task.
            services.Db.ChangeTracker.Clear();
            return Refuse(Replay((await FindByIdempotencyKeyAsync(services.Db, caller.KeyId, idempotencyKey!))!, hash!, http));
        }

        if (request.AsyncExecution)
        {
            try
            {
                await services.Queue.EnqueueAsync(task, CancellationToken.None);
            }
            catch (Exception e) when (e is BackgroundJobClientException or NpgsqlException or InvalidOperationException)
            {
                // The task is stored, so it is accepted: the maintenance sweep enqueues a task without a job. Answering
                // with an error here would make the client retry and the task run twice.
                services.Logger.LogWarning("Task {TaskId} stored but not enqueued ({Message}); the maintenance sweep will enqueue it",
                    task.Id, e.GetBaseException().Message);
            }
            return new Submission(task, null);
        }

        services.Db.Entry(task).State = EntityState.Detached;
        return new Submission(task, null);
    }

    private static Submission Refuse(Results<Ok<ExecuteResponse>, Accepted<AcceptedResponse>, ProblemHttpResult, ValidationProblem> outcome) =>
        new(null, outcome);

    // Literal private addresses and localhost are refused here; names are checked on every delivery, after DNS.
    private static string? WebhookRefusal(string url, Caller caller, WebhookTargets webhooks) =>
        caller.IsAdmin
            ? "The admin key has no webhook secret to sign deliveries with; submit webhook tasks with a client key."
            : webhooks.RefusalOf(new Uri(url));

    private static Task<AgentTask?> FindByIdempotencyKeyAsync(AgentDbContext db, Guid keyId, string idempotencyKey) =>
        db.Tasks.AsNoTracking().FirstOrDefaultAsync(t => t.ApiKeyId == keyId && t.IdempotencyKey == idempotencyKey);

    private static Results<Ok<ExecuteResponse>, Accepted<AcceptedResponse>, ProblemHttpResult, ValidationProblem> Replay(AgentTask existing, string hash,
        HttpContext http)
    {
        if (existing.RequestHash != hash)
            return TypedResults.Problem(statusCode: 409, title: "Idempotency-Key reused",
                detail: "This Idempotency-Key was already used with a different request body.",
                extensions: new Dictionary<string, object?> { ["task_id"] = existing.Id });
        // The row was just read: a replay tells where the task is now, not what the first answer said.
        if (existing.IsAsync) return Accepted(existing);
        if (!existing.IsFinal)
            return TypedResults.Problem(statusCode: 409, title: "Request in progress",
                detail: "The first request with this Idempotency-Key is still running.",
                extensions: new Dictionary<string, object?> { ["task_id"] = existing.Id });
        return SyncOutcome(existing, http);
    }

    private static Accepted<AcceptedResponse> Accepted(AgentTask task)
    {
        var statusUrl = $"/agent/status/{task.Id}";
        return TypedResults.Accepted(statusUrl, new AcceptedResponse(task.Id, task.Status, statusUrl,
            task.ReadRouting()?.Decision));
    }

    public static Results<Ok<ExecuteResponse>, Accepted<AcceptedResponse>, ProblemHttpResult, ValidationProblem> SyncOutcome(AgentTask task,
        HttpContext http)
    {
        if (task.Refusal is { } refusal) return Refused(task, refusal, http);
        var view = TaskView.From(task);
        if (task.Status == TaskStatus.Completed)
        {
            return TypedResults.Ok(new ExecuteResponse(task.Id, task.Status, task.Agent, task.Result,
                view.Usage ?? new Usage(0, 0, 0), task.CostUsd ?? 0m, task.DurationMs ?? 0, view.Cached, view.Cache,
                task.Model, task.Strategy, view.Routing, view.Runs, view.ToolCalls));
        }
        var extensions = new Dictionary<string, object?> { ["task_id"] = task.Id, ["task_status"] = task.Status, ["agent"] = task.Agent };
        // Every model of every agent refused because of open breakers: the platform is protecting itself, retry later.
        if (view.Runs is { Count: > 0 } runs && runs.All(r => r.Outcome == "unavailable"))
        {
            var retryAfter = runs.Select(r => r.RetryAfter ?? TimeSpan.FromSeconds(5)).Min();
            http.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
            return TypedResults.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "Agent unavailable",
                detail: $"Agent '{task.Agent}' is unavailable: every model of its chain has an open circuit breaker or failed. {task.Error}",
                extensions: extensions);
        }
        // Every run hit its agent's time limit (timeout_seconds): the gateway-timeout answer, not a provider error.
        var timedOut = view.Runs is { Count: > 0 } all && all.All(r => r.Outcome == "timeout");
        return TypedResults.Problem(
            statusCode: task.Status == TaskStatus.Cancelled ? 499 : timedOut ? StatusCodes.Status504GatewayTimeout : StatusCodes.Status502BadGateway,
            title: task.Status == TaskStatus.Cancelled ? "Task cancelled" : timedOut ? "Agent timed out" : "Agent task failed",
            detail: task.Error,
            extensions: extensions);
    }

    /// <summary>A token limit or budget refused the run before any LLM call: 429 (503 when the counters are unreachable).</summary>
    private static ProblemHttpResult Refused(AgentTask task, Engine.Admission.SpendRefusal refusal, HttpContext http)
    {
        // Refused by its request limit in the run's admission: nothing was stored, the answer is the filter's.
        if (task.RequestLimit is { Allowed: false } requests)
        {
            RateLimitFilter.Apply(http, requests);
            return RateLimitFilter.TooMany(requests);
        }
        var headers = http.Response.Headers;
        headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(refusal.RetryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (refusal.TokenLimit is { } limit)
        {
            headers["X-RateLimit-Limit-Tokens"] = limit.ToString(System.Globalization.CultureInfo.InvariantCulture);
            headers["X-RateLimit-Remaining-Tokens"] = Math.Max(0, refusal.TokensRemaining ?? 0).ToString(System.Globalization.CultureInfo.InvariantCulture);
            if (refusal.Kind == "tokens") headers["X-RateLimit-Reset-Tokens"] = headers.RetryAfter.ToString();
        }
        return TypedResults.Problem(statusCode: refusal.Status,
            title: refusal.Kind switch { "tokens" => "Token limit exceeded", "budget" => "Daily budget exceeded", "agent_budget" => "Agent budget exceeded", _ => "Limits unavailable" },
            detail: refusal.Message, type: $"https://agentplatform.dev/problems/{refusal.Kind.Replace('_', '-')}",
            extensions: new Dictionary<string, object?> { ["task_id"] = task.Id, ["limit"] = refusal.Kind, ["agent"] = task.Agent });
    }

    public static async Task<Results<Ok<TaskView>, NotFound<ProblemDetails>, ValidationProblem>> GetStatusAsync(
        Guid taskId, int? wait, [FromServices] TaskServices services, ClaimsPrincipal user, CancellationToken cancellationToken)
    {
        if (wait is < 0 or > MaxWaitSeconds)
            return TypedResults.ValidationProblem(new Dictionary<string, string[]>
            {
                ["wait"] = [$"wait must be between 0 and {MaxWaitSeconds} seconds."],
            });

        var keyId = user.GetCaller().KeyId;
        // A sync task this instance finished and has not written yet.
        if (services.WriteBehind.Find(taskId, keyId) is { } finished) return TypedResults.Ok(TaskView.From(finished));
        Task<AgentTask?> Read(CancellationToken ct) =>
            services.Db.Tasks.AsNoTracking().FirstOrDefaultAsync(t => t.Id == taskId && t.ApiKeyId == keyId, ct);

        var task = wait is > 0
            ? await services.Events.WaitAsync(taskId, Read, t => t is null || t.IsFinal, TimeSpan.FromSeconds(wait.Value), cancellationToken)
            : await Read(cancellationToken);
        return task is null ? TaskNotFound(taskId) : TypedResults.Ok(TaskView.From(task));
    }

    public static async Task<Results<Ok<TaskView>, NotFound<ProblemDetails>, ProblemHttpResult>> CancelAsync(
        Guid taskId, [FromServices] TaskServices services, ClaimsPrincipal user)
    {
        var keyId = user.GetCaller().KeyId;
        await services.WriteBehind.WhenWrittenAsync(taskId, CancellationToken.None);
        var task = await services.Db.Tasks.AsNoTracking().FirstOrDefaultAsync(t => t.Id == taskId && t.ApiKeyId == keyId);
        if (task is null) return TaskNotFound(taskId);

        var cancelled = await services.Db.Tasks
            .Where(t => t.Id == taskId && (t.Status == TaskStatus.Queued || t.Status == TaskStatus.Running))
            .ExecuteUpdateAsync(s => s
                .SetProperty(t => t.Status, TaskStatus.Cancelled)
                .SetProperty(t => t.Error, "Cancelled by the client.")
                .SetProperty(t => t.CompletedAt, DateTimeOffset.UtcNow));
        var current = await services.Db.Tasks.AsNoTracking().FirstAsync(t => t.Id == taskId);
        if (cancelled == 0)
            return TypedResults.Problem(statusCode: 409, title: "Task already finished",
                detail: $"The task is already {current.Status}.",
                extensions: new Dictionary<string, object?> { ["task_id"] = taskId, ["task_status"] = current.Status });

        services.Queue.Abort(current);
        await services.Events.PublishAsync(taskId);
        return TypedResults.Ok(TaskView.From(current));
    }

    public static async Task<Results<Ok<FeedbackResponse>, NotFound<ProblemDetails>>> SubmitFeedbackAsync(
        FeedbackRequest request, [FromServices] AgentDbContext db, [FromServices] AgentStats stats, [FromServices] TaskWriteBehind writeBehind,
        ClaimsPrincipal user)
    {
        var keyId = user.GetCaller().KeyId;
        var taskId = request.TaskId!.Value;
        // The rating refers to the task's row: a sync task this instance just finished is written first.
        await writeBehind.WhenWrittenAsync(taskId, CancellationToken.None);
        var agent = await db.Tasks.Where(t => t.Id == taskId && t.ApiKeyId == keyId).Select(t => t.Agent).FirstOrDefaultAsync();
        if (agent is null) return TaskNotFound(taskId);

        // One rating per task: a repeat replaces it. One statement, so concurrent ratings cannot collide on the key.
        var createdAt = DateTimeOffset.UtcNow;
        var firstRating = (await db.Database.SqlQuery<bool>($"""
            INSERT INTO task_feedback ("TaskId", "ApiKeyId", "Rating", "Comment", "CreatedAt")
            VALUES ({taskId}, {keyId}, {request.Rating!.Value}, {request.Comment}, {createdAt})
            ON CONFLICT ("TaskId") DO UPDATE SET "Rating" = EXCLUDED."Rating", "Comment" = EXCLUDED."Comment", "CreatedAt" = EXCLUDED."CreatedAt"
            RETURNING (xmax = 0) AS "Value"
            """).ToListAsync()).Single();
        // A task's rating teaches the router once (the first time), and only this key's routing: see AgentStats.
        if (firstRating) await stats.RecordFeedbackAsync(keyId, agent, request.Rating!.Value);
        return TypedResults.Ok(new FeedbackResponse(taskId, request.Rating!.Value, request.Comment, createdAt));
    }

    private static NotFound<ProblemDetails> TaskNotFound(Guid taskId) => TypedResults.NotFound(new ProblemDetails
    {
        Status = 404,
        Title = "Task not found",
        Detail = $"No task {taskId} belongs to this API key.",
    });
}
