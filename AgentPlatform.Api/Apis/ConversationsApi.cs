using System.ComponentModel.DataAnnotations;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Security.Claims;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using AgentPlatform.Api.Admission;
using AgentPlatform.Api.Auth;
using AgentPlatform.Engine.Conversations;
using AgentPlatform.Engine.Execution;
using AgentPlatform.Engine.Tasks;
using AgentPlatform.Engine.Webhooks;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.AI;
using TaskStatus = AgentPlatform.Engine.Tasks.TaskStatus;

namespace AgentPlatform.Api.Apis;

/// <summary>
/// Conversations (seed 003): chat turns in sessions, streamed or not, and the sessions' history. A turn is a task with a
/// session: it goes through the same admission, routing, runner and metering as /agent/execute.
/// </summary>
public static class ConversationsApi
{
    public static IEndpointRouteBuilder MapConversationsApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/agent")
            .WithTags("Conversations")
            .RequireAuthorization()
            .AddEndpointFilter<RateLimitFilter>();

        api.MapPost("/chat", ChatAsync)
            .WithMetadata(new RunsTaskMetadata())
            .AddEndpointFilter<PromptInjectionFilter>()
            .WithName("Chat")
            .WithSummary("Send a message in a session (a new one when session_id is absent) and get the agent's reply");

        api.MapPost("/chat/stream", StreamAsync)
            .WithMetadata(new RunsTaskMetadata())
            .AddEndpointFilter<PromptInjectionFilter>()
            .Produces(StatusCodes.Status200OK, contentType: "text/event-stream")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status403Forbidden)
            .WithName("ChatStream")
            .WithSummary("The same turn as /agent/chat, streamed as server-sent events: 'delta' events, then one 'done' (or 'error') event");

        api.MapGet("/conversations", ListAsync)
            .WithName("ListConversations")
            .WithSummary("The caller's sessions, most recently active first");

        api.MapGet("/conversations/{sessionId}", GetAsync)
            .WithName("GetConversation")
            .WithSummary("A session's messages, oldest first");

        api.MapDelete("/conversations/{sessionId}", DeleteAsync)
            .WithName("DeleteConversation")
            .WithSummary("Clear a session's history");

        return app;
    }

    public static async Task<Results<Ok<ChatResponse>, ProblemHttpResult, ValidationProblem>> ChatAsync(
        ChatRequest request, [FromServices] AgentTaskApi.TaskServices services, [FromServices] WebhookTargets webhooks,
        ClaimsPrincipal user, HttpContext http)
    {
        var caller = user.GetCaller();
        var (task, refusal) = await SubmitAsync(request, services, webhooks, caller, http);
        if (refusal is not null) return refusal;
        var done = await services.Runner.RunClaimedAsync(task!, caller.ToToolCaller() with { User = request.User }, http.RequestAborted);
        AgentTaskApi.SetRunHeaders(http, done);
        if (done.Status != TaskStatus.Completed) return Failure(done, http);
        return TypedResults.Ok(ChatResponse.From(done));
    }

    public static async Task<IResult> StreamAsync(
        ChatRequest request, [FromServices] AgentTaskApi.TaskServices services, [FromServices] WebhookTargets webhooks,
        ClaimsPrincipal user, HttpContext http)
    {
        var caller = user.GetCaller();
        var (task, refusal) = await SubmitAsync(request, services, webhooks, caller, http);
        if (refusal is not null) return refusal;

        // The run writes into a channel; the response reads it. A client that goes away aborts the request, which
        // cancels the run and with it the LLM call.
        var events = Channel.CreateUnbounded<SseItem<JsonObject>>(new UnboundedChannelOptions { SingleReader = true });
        var input = new RunInput(task!.Input)
        {
            ContextJson = task.ContextJson,
            OnUpdate = (update, _) =>
            {
                if (update.Text is { Length: > 0 } text) events.Writer.TryWrite(new SseItem<JsonObject>(new JsonObject { ["text"] = text }, "delta"));
                return ValueTask.CompletedTask;
            },
        };
        var run = Task.Run(async () =>
        {
            try
            {
                var done = await services.Runner.RunClaimedAsync(task, caller.ToToolCaller() with { User = request.User }, http.RequestAborted, input);
                events.Writer.TryWrite(done.Status == TaskStatus.Completed
                    ? new SseItem<JsonObject>(Done(done), "done")
                    : new SseItem<JsonObject>(new JsonObject { ["task"] = done.Id.ToString() }, ErrorEvent) { EventId = done.Id.ToString() });
                return done;
            }
            finally
            {
                events.Writer.TryComplete();
            }
        });

        // Nothing is sent before the first event: a turn that fails before its first token gets a plain error response
        // with the right status code, as /agent/chat would give.
        var started = await events.Reader.WaitToReadAsync(CancellationToken.None);
        // The run set the task's cache outcome before its first event (a hit is replayed as deltas).
        AgentTaskApi.SetRunHeaders(http, task);
        if (!started) return Failure(await run, http);
        events.Reader.TryPeek(out var first);
        if (first!.EventType == ErrorEvent) return Failure(await run, http);
        return TypedResults.ServerSentEvents(Read(events.Reader, run));
    }

    private const string ErrorEvent = "error";

    /// <summary>The final event: the turn's answer without the reply text, which the deltas carried.</summary>
    private static JsonObject Done(AgentTask task)
    {
        var done = System.Text.Json.JsonSerializer.SerializeToNode(ChatResponse.From(task), Json)!.AsObject();
        done.Remove("reply");
        return done;
    }

    private static readonly System.Text.Json.JsonSerializerOptions Json = new(System.Text.Json.JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.SnakeCaseLower,
    };

    private static async IAsyncEnumerable<SseItem<JsonObject>> Read(ChannelReader<SseItem<JsonObject>> reader, Task<AgentTask> run,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        try
        {
            await foreach (var item in reader.ReadAllAsync(cancellationToken))
            {
                if (item.EventType != ErrorEvent)
                {
                    yield return item;
                    continue;
                }
                // Failed after output began: the status line and headers are gone (a Retry-After cannot be set any more), so the
                // problem, built on a throwaway context, goes in the error event.
                var problem = Failure(await run, new DefaultHttpContext()).ProblemDetails;
                yield return new SseItem<JsonObject>(System.Text.Json.JsonSerializer.SerializeToNode(problem)!.AsObject(), ErrorEvent);
            }
        }
        finally
        {
            // The run records the turn (cancelled, when the client went away) with this request's services, its database
            // context included (a pooled one, handed to the next request once this one ends): let it finish first.
            await run.ContinueWith(_ => { }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
        }
    }

    private static async Task<(AgentTask? Task, Results<Ok<ChatResponse>, ProblemHttpResult, ValidationProblem>? Refusal)> SubmitAsync(
        ChatRequest request, AgentTaskApi.TaskServices services, WebhookTargets webhooks, Caller caller, HttpContext http)
    {
        var execute = new ExecuteRequest
        {
            Task = request.Message,
            AgentType = request.AgentType,
            Context = request.Context,
            SessionId = request.SessionId ?? ConversationRules.NewSessionId(),
            Cache = request.Cache,
        };
        var submission = await AgentTaskApi.SubmitAsync(execute, null, services, webhooks, caller, http);
        return submission.Outcome?.Result switch
        {
            null => (submission.Task, null),
            ValidationProblem invalid => (null, Rename(invalid)),
            ProblemHttpResult problem => (null, problem),
            var other => throw new InvalidOperationException($"A chat turn cannot answer with {other.GetType().Name}."),
        };
    }

    // The chat request calls the task "message".
    private static ValidationProblem Rename(ValidationProblem invalid) =>
        TypedResults.ValidationProblem(invalid.ProblemDetails.Errors.ToDictionary(e => e.Key == "task" ? "message" : e.Key, e => e.Value));

    private static ProblemHttpResult Failure(AgentTask task, HttpContext http) =>
        AgentTaskApi.SyncOutcome(task, http).Result as ProblemHttpResult
        ?? TypedResults.Problem(statusCode: 502, title: "Agent task failed", detail: task.Error);

    public static async Task<Ok<ConversationList>> ListAsync(int? limit, [FromServices] ConversationStore store, ClaimsPrincipal user,
        CancellationToken cancellationToken)
    {
        var sessions = await store.ListAsync(user.GetCaller().KeyId, Math.Clamp(limit ?? 50, 1, 200), cancellationToken);
        return TypedResults.Ok(new ConversationList(sessions
            .Select(c => new ConversationSummary(c.SessionId, c.Title, c.MessageCount, c.CreatedAt, c.UpdatedAt)).ToList()));
    }

    public static async Task<Results<Ok<ConversationView>, ProblemHttpResult, ValidationProblem>> GetAsync(string sessionId,
        [FromServices] ConversationStore store, ClaimsPrincipal user, CancellationToken cancellationToken)
    {
        if (ConversationRules.SessionIdError(sessionId) is { } error)
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["session_id"] = [error] });
        var messages = await store.HistoryAsync(user.GetCaller().KeyId, sessionId, cancellationToken);
        if (messages.Count == 0) return NotFound(sessionId);
        return TypedResults.Ok(new ConversationView(sessionId, messages.Count,
            messages.Select(m => new MessageView(m.Id, m.Role, m.Content, m.Agent, m.Model, m.TaskId, m.CreatedAt)).ToList()));
    }

    public static async Task<Results<NoContent, ProblemHttpResult, ValidationProblem>> DeleteAsync(string sessionId,
        [FromServices] ConversationStore store, ClaimsPrincipal user, CancellationToken cancellationToken)
    {
        if (ConversationRules.SessionIdError(sessionId) is { } error)
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["session_id"] = [error] });
        return await store.ClearAsync(user.GetCaller().KeyId, sessionId, cancellationToken) ? TypedResults.NoContent() : NotFound(sessionId);
    }

    // Another key's session and a session that does not exist look the same.
    private static ProblemHttpResult NotFound(string sessionId) => TypedResults.Problem(statusCode: StatusCodes.Status404NotFound,
        title: "Conversation not found", detail: $"No conversation '{sessionId}' with messages belongs to this API key.");
}

public sealed class ChatRequest : IPromptRequest, IValidatableObject
{
    [Required, MinLength(1), MaxLength(ExecuteRequest.MaxTaskLength), Display(Name = "message")]
    public string Message { get; init; } = "";

    /// <summary>The session to continue; a new one when absent. Letters, digits and . _ : - (at most 100).</summary>
    [MaxLength(100), Display(Name = "session_id")]
    public string? SessionId { get; init; }

    /// <summary>An agent name, or "auto" (the default) to let the platform choose for this turn.</summary>
    [MaxLength(100), Display(Name = "agent_type")]
    public string? AgentType { get; init; }

    public JsonObject? Context { get; init; }

    /// <summary>The key's end user this turn is for: the memories recalled (and stored by the agent) are that user's.</summary>
    [Display(Name = "user")]
    public string? User { get; init; }

    /// <summary>false: a fresh answer, neither served from nor stored in the response cache (as <c>Cache-Control: no-cache</c>).</summary>
    public bool? Cache { get; init; }

    public IEnumerable<(string Field, string? Text)> PromptFields()
    {
        yield return ("message", Message);
        if (Context is not null) yield return ("context", Context.ToJsonString());
    }

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (string.IsNullOrWhiteSpace(Message))
            yield return new ValidationResult("The message must not be blank.", ["message"]);
        if (ConversationRules.SessionIdError(SessionId) is { } error)
            yield return new ValidationResult(error, ["session_id"]);
        if (Context is not null && Context.ToJsonString().Length > 64_000)
            yield return new ValidationResult("The context must serialise to at most 64,000 characters.", ["context"]);
        if (Engine.Memory.LongTermMemory.CheckUser(User) is { } userError)
            yield return new ValidationResult(userError, ["user"]);
    }
}

/// <summary>A chat turn's answer; <c>message_id</c> is the reply's id in the history (the turn's task id).</summary>
public sealed record ChatResponse(string SessionId, Guid MessageId, Guid TaskId, string? Reply, string Agent, string? Model, Usage Usage,
    decimal CostUsd, long DurationMs, bool Cached)
{
    public static ChatResponse From(AgentTask task) => new(task.SessionId!, task.Id, task.Id, task.Result ?? "", task.Agent, task.Model,
        new Usage(task.PromptTokens ?? 0, task.CompletionTokens ?? 0, (task.PromptTokens ?? 0) + (task.CompletionTokens ?? 0)),
        task.CostUsd ?? 0m, task.DurationMs ?? 0, Engine.Caching.CacheOutcomes.IsHit(task.CacheOutcome));
}

public sealed record ConversationSummary(string SessionId, string? Title, int MessageCount, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt);

public sealed record ConversationList(IReadOnlyList<ConversationSummary> Conversations);

public sealed record MessageView(Guid Id, string Role, string Content, string? Agent, string? Model, Guid? TaskId, DateTimeOffset CreatedAt);

public sealed record ConversationView(string SessionId, int MessageCount, IReadOnlyList<MessageView> Messages);
