using System.Diagnostics;
using System.Security.Claims;
using AgentPlatform.Api.Admission;
using AgentPlatform.Api.Auth;
using AgentPlatform.Engine.Agents;
using AgentPlatform.Engine.Data;
using AgentPlatform.Engine.Tasks;
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
    public sealed class TaskServices(AgentDbContext db, AgentCatalog agents, TaskQueue queue, TaskRunner runner, TaskEvents events)
    {
        public AgentDbContext Db { get; } = db;
        public AgentCatalog Agents { get; } = agents;
        public TaskQueue Queue { get; } = queue;
        public TaskRunner Runner { get; } = runner;
        public TaskEvents Events { get; } = events;
    }

    public static async Task<Results<Ok<ExecuteResponse>, Accepted<AcceptedResponse>, ProblemHttpResult, ValidationProblem>> ExecuteAsync(
        ExecuteRequest request,
        [FromHeader(Name = "Idempotency-Key")] string? idempotencyKey,
        [FromServices] TaskServices services,
        ClaimsPrincipal user,
        HttpContext http)
    {
        var caller = user.GetCaller();
        if (idempotencyKey is { Length: > 200 } || idempotencyKey is { Length: 0 })
            return TypedResults.ValidationProblem(new Dictionary<string, string[]>
            {
                ["Idempotency-Key"] = ["The Idempotency-Key header must be 1 to 200 characters."],
            });

        var agent = services.Agents.Resolve(request.AgentType);
        if (agent is null)
            return TypedResults.ValidationProblem(new Dictionary<string, string[]>
            {
                ["agent_type"] = [$"Unknown agent '{request.AgentType}'. Known agents: {string.Join(", ", services.Agents.All.Select(a => a.Name))}, or 'auto'."],
            });
        if (!caller.MayUseAgent(agent.Name))
            return TypedResults.Problem(statusCode: 403, title: "Agent not allowed",
                detail: $"This API key may not use the agent '{agent.Name}'.");

        var hash = RequestHash.Of(request);
        if (idempotencyKey is not null && await FindByIdempotencyKeyAsync(services.Db, caller.KeyId, idempotencyKey) is { } existing)
            return Replay(existing, hash);

        var task = new AgentTask
        {
            Id = Guid.CreateVersion7(),
            ApiKeyId = caller.KeyId,
            Agent = agent.Name,
            Input = request.Task,
            ContextJson = request.Context?.ToJsonString(),
            Priority = request.Priority,
            SessionId = request.SessionId,
            WebhookUrl = request.WebhookUrl,
            IsAsync = request.AsyncExecution,
            // A sync task runs right here, so it is stored already claimed.
            Status = request.AsyncExecution ? TaskStatus.Queued : TaskStatus.Running,
            StartedAt = request.AsyncExecution ? null : DateTimeOffset.UtcNow,
            Attempts = request.AsyncExecution ? 0 : 1,
            IdempotencyKey = idempotencyKey,
            RequestHash = hash,
            TraceParent = Activity.Current?.Id,
            CreatedAt = DateTimeOffset.UtcNow,
        };
        services.Db.Tasks.Add(task);
        try
        {
            await services.Db.SaveChangesAsync(CancellationToken.None);
        }
        catch (DbUpdateException e) when (e.InnerException is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation })
        {
            // Two retries with one Idempotency-Key raced; the first one's task is the task.
            services.Db.ChangeTracker.Clear();
            return Replay((await FindByIdempotencyKeyAsync(services.Db, caller.KeyId, idempotencyKey!))!, hash);
        }

        if (request.AsyncExecution)
        {
            await services.Queue.EnqueueAsync(task, CancellationToken.None);
            return Accepted(task);
        }

        services.Db.Entry(task).State = EntityState.Detached;
        return SyncOutcome(await services.Runner.RunClaimedAsync(task, http.RequestAborted));
    }

    private static Task<AgentTask?> FindByIdempotencyKeyAsync(AgentDbContext db, Guid keyId, string idempotencyKey) =>
        db.Tasks.AsNoTracking().FirstOrDefaultAsync(t => t.ApiKeyId == keyId && t.IdempotencyKey == idempotencyKey);

    private static Results<Ok<ExecuteResponse>, Accepted<AcceptedResponse>, ProblemHttpResult, ValidationProblem> Replay(AgentTask existing, string hash)
    {
        if (existing.RequestHash != hash)
            return TypedResults.Problem(statusCode: 409, title: "Idempotency-Key reused",
                detail: "This Idempotency-Key was already used with a different request body.",
                extensions: new Dictionary<string, object?> { ["task_id"] = existing.Id });
        if (existing.IsAsync) return Accepted(existing);
        if (!existing.IsFinal)
            return TypedResults.Problem(statusCode: 409, title: "Request in progress",
                detail: "The first request with this Idempotency-Key is still running.",
                extensions: new Dictionary<string, object?> { ["task_id"] = existing.Id });
        return SyncOutcome(existing);
    }

    private static Accepted<AcceptedResponse> Accepted(AgentTask task)
    {
        var statusUrl = $"/agent/status/{task.Id}";
        return TypedResults.Accepted(statusUrl, new AcceptedResponse(task.Id, TaskStatus.Queued, statusUrl));
    }

    private static Results<Ok<ExecuteResponse>, Accepted<AcceptedResponse>, ProblemHttpResult, ValidationProblem> SyncOutcome(AgentTask task)
    {
        if (task.Status == TaskStatus.Completed)
        {
            var prompt = task.PromptTokens ?? 0;
            var completion = task.CompletionTokens ?? 0;
            return TypedResults.Ok(new ExecuteResponse(task.Id, task.Status, task.Agent, task.Result,
                new Usage(prompt, completion, prompt + completion), task.CostUsd ?? 0m, task.DurationMs ?? 0, Cached: false));
        }
        return TypedResults.Problem(
            statusCode: task.Status == TaskStatus.Cancelled ? 499 : StatusCodes.Status502BadGateway,
            title: task.Status == TaskStatus.Cancelled ? "Task cancelled" : "Agent task failed",
            detail: task.Error,
            extensions: new Dictionary<string, object?> { ["task_id"] = task.Id, ["task_status"] = task.Status });
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
        FeedbackRequest request, [FromServices] AgentDbContext db, ClaimsPrincipal user)
    {
        var keyId = user.GetCaller().KeyId;
        var taskId = request.TaskId!.Value;
        if (!await db.Tasks.AnyAsync(t => t.Id == taskId && t.ApiKeyId == keyId)) return TaskNotFound(taskId);

        var feedback = await db.Feedback.FindAsync(taskId);
        if (feedback is null)
        {
            feedback = new TaskFeedback { TaskId = taskId, ApiKeyId = keyId };
            db.Feedback.Add(feedback);
        }
        feedback.Rating = request.Rating!.Value;
        feedback.Comment = request.Comment;
        feedback.CreatedAt = DateTimeOffset.UtcNow;
        await db.SaveChangesAsync();
        return TypedResults.Ok(new FeedbackResponse(taskId, feedback.Rating, feedback.Comment, feedback.CreatedAt));
    }

    private static NotFound<ProblemDetails> TaskNotFound(Guid taskId) => TypedResults.NotFound(new ProblemDetails
    {
        Status = 404,
        Title = "Task not found",
        Detail = $"No task {taskId} belongs to this API key.",
    });
}
