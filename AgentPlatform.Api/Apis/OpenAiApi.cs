using System.Diagnostics;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Claims;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using AgentPlatform.Api.Admission;
using AgentPlatform.Engine.Admission;
using AgentPlatform.Api.Auth;
using AgentPlatform.Api.Extensions;
using AgentPlatform.Engine.Agents;
using AgentPlatform.Engine.Execution;
using AgentPlatform.Engine.Llm;
using AgentPlatform.Engine.Routing;
using AgentPlatform.Engine.Tasks;
using AgentPlatform.Engine.Webhooks;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.AI;
using TaskStatus = AgentPlatform.Engine.Tasks.TaskStatus;

namespace AgentPlatform.Api.Apis;

/// <summary>
/// The OpenAI-compatible API: the official SDKs work against it with the platform's base URL and a platform key. A model is
/// an agent (or "auto", the router's choice); a chat completion is a task like any other — the same admission, routing,
/// breakers, metering and task row as /agent/execute. Errors come in OpenAI's shape (<see cref="OpenAiErrorWriter"/>).
/// </summary>
public static class OpenAiApi
{
    public const string Owner = "agentplatform";

    public static IEndpointRouteBuilder MapOpenAiApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/v1")
            .WithTags("OpenAI-compatible")
            .RequireAuthorization()
            .AddEndpointFilter(RequestId)
            .AddEndpointFilter<RateLimitFilter>();

        api.MapGet("/models", ListModels)
            .WithName("ListModels")
            .WithSummary("The agents this key may use, and 'auto', as OpenAI models");

        api.MapGet("/models/{id}", GetModel)
            .WithName("GetModel")
            .WithSummary("One agent (or 'auto') as an OpenAI model; 404 for one this key may not use");

        api.MapPost("/chat/completions", ChatCompletionsAsync)
            .WithMetadata(new RunsTaskMetadata())
            .AddEndpointFilter<PromptInjectionFilter>()
            .Produces<ChatCompletion>()
            .Produces(StatusCodes.Status200OK, contentType: "text/event-stream")
            .WithName("CreateChatCompletion")
            .WithSummary("OpenAI chat completion with model = an agent name or 'auto'; stream: true answers with chat.completion.chunk events");

        api.MapPost("/embeddings", EmbeddingsAsync)
            .WithName("CreateEmbeddings")
            .WithSummary("OpenAI embeddings through the configured embedding model, or the local embedding ('local', or when no provider)");

        // Seed 000: an agent's own OpenAI endpoint; an SDK whose base URL is /agents/{name} talks to that agent only.
        app.MapPost("/agents/{name}/chat/completions", AgentChatCompletionsAsync)
            .WithMetadata(new RunsTaskMetadata())
            .WithTags("Agents")
            .RequireAuthorization()
            .AddEndpointFilter(RequestId)
            .AddEndpointFilter<RateLimitFilter>()
            .AddEndpointFilter<PromptInjectionFilter>()
            .Produces<ChatCompletion>()
            .Produces(StatusCodes.Status200OK, contentType: "text/event-stream")
            .WithName("CreateAgentChatCompletion")
            .WithSummary("The same as /v1/chat/completions with the agent chosen by the path (the body's model is ignored)");

        return app;
    }

    /// <summary>OpenAI answers every request with an x-request-id a client can quote; ours is the request's trace identifier.</summary>
    private static ValueTask<object?> RequestId(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        context.HttpContext.Response.Headers["x-request-id"] = context.HttpContext.TraceIdentifier;
        return next(context);
    }

    public static Ok<ModelList> ListModels([FromServices] AgentRegistry agents, ClaimsPrincipal user)
    {
        var caller = user.GetCaller();
        var usable = agents.Current.All.Where(a => caller.MayUseAgent(a.Name)).Select(a => ModelView.Of(a.Name, a.Description)).ToList();
        // "auto" chooses among the agents the key may use: with none, there is nothing to choose.
        if (usable.Count > 0) usable.Insert(0, ModelView.Auto);
        return TypedResults.Ok(new ModelList("list", usable));
    }

    public static Results<Ok<ModelView>, ProblemHttpResult> GetModel(string id, [FromServices] AgentRegistry agents, ClaimsPrincipal user)
    {
        var caller = user.GetCaller();
        if (IsAuto(id) && agents.Current.All.Any(a => caller.MayUseAgent(a.Name))) return TypedResults.Ok(ModelView.Auto);
        // A model the key may not use is not there for it, as with OpenAI.
        return agents.Find(id) is { } agent && caller.MayUseAgent(agent.Name)
            ? TypedResults.Ok(ModelView.Of(agent.Name, agent.Description))
            : ModelNotFound(id, param: null);
    }

    public static Task<IResult> ChatCompletionsAsync(ChatCompletionRequest request, [FromServices] AgentTaskApi.TaskServices services,
        [FromServices] WebhookTargets webhooks, ClaimsPrincipal user, HttpContext http) =>
        CompleteAsync(request, services, webhooks, user.GetCaller(), http);

    public static Task<IResult> AgentChatCompletionsAsync(string name, ChatCompletionRequest request,
        [FromServices] AgentTaskApi.TaskServices services, [FromServices] WebhookTargets webhooks, ClaimsPrincipal user, HttpContext http)
    {
        // The SDKs always send a model; on this endpoint the path chose the agent already.
        request.Model = name;
        return CompleteAsync(request, services, webhooks, user.GetCaller(), http);
    }

    private static async Task<IResult> CompleteAsync(ChatCompletionRequest request, AgentTaskApi.TaskServices services, WebhookTargets webhooks,
        Caller caller, HttpContext http)
    {
        if (string.IsNullOrWhiteSpace(request.Model))
            return Invalid("model", "model is required: an agent name or 'auto' (GET /v1/models lists them).");
        var model = request.Model.Trim();
        if (!IsAuto(model) && services.Agents.Find(model) is null) return ModelNotFound(model, param: "model");

        var execute = new ExecuteRequest
        {
            Task = request.TaskText,
            AgentType = IsAuto(model) ? AgentRegistry.Auto : model,
            // The client's tool calls need one agent's answer as the model gave it: no parallel or cascade.
            Strategy = request.Tools is { Count: > 0 } ? Strategies.Single : null,
            Cache = request.Cache,
        };
        var submission = await AgentTaskApi.SubmitAsync(execute, null, services, webhooks, caller, http);
        if (submission.Outcome is { } refusal) return refusal.Result;
        var task = submission.Task!;

        // The end user the client names is the task's: in its log lines and its trace, not sent to the provider.
        using var endUser = request.User is null ? null : services.Logger.BeginScope(new Dictionary<string, object> { ["EndUser"] = request.User });
        Activity.Current?.SetTag("enduser.id", request.User);

        var answer = new Answer(request.ClientToolNames);
        var input = new RunInput(task.Input)
        {
            Conversation = request.ToConversation(),
            ConfigureOptions = request.Configure,
            OnResponse = response => answer.Response = response,
        };
        if (request.Stream) return await StreamAsync(request, task, input, answer, services, caller, http, submission.Requests);

        var done = await services.Runner.RunClaimedAsync(task, caller.ToToolCaller() with { User = EndUser(request.User) }, http.RequestAborted, input,
            submission.Requests);
        AgentTaskApi.SetRunHeaders(http, done);
        if (done.Status != TaskStatus.Completed) return AgentTaskApi.SyncOutcome(done, http).Result;
        return TypedResults.Ok(ChatCompletion.From(done, answer));
    }

    /// <summary>
    /// The run writes chunks into a channel as the model's updates arrive; the response reads it. Nothing is sent before the
    /// first chunk, so a call that fails before its first token gets a plain error with the right status code. A client that
    /// goes away aborts the request, which cancels the run and with it the LLM call.
    /// </summary>
    private static async Task<IResult> StreamAsync(ChatCompletionRequest request, AgentTask task, RunInput input, Answer answer,
        AgentTaskApi.TaskServices services, Caller caller, HttpContext http, RequestCheck? requests)
    {
        var chunks = new ChunkWriter(task, answer);
        var channel = Channel.CreateUnbounded<JsonObject>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        input = input with
        {
            OnUpdate = (update, _) =>
            {
                foreach (var chunk in chunks.Deltas(update)) channel.Writer.TryWrite(chunk);
                return ValueTask.CompletedTask;
            },
        };
        var run = Task.Run(async () =>
        {
            try
            {
                return await services.Runner.RunClaimedAsync(task, caller.ToToolCaller() with { User = EndUser(request.User) }, http.RequestAborted, input,
                    requests);
            }
            finally
            {
                channel.Writer.TryComplete();
            }
        });

        var started = await channel.Reader.WaitToReadAsync(CancellationToken.None);
        // The run set the task's cache outcome before its first chunk (a hit is replayed as chunks).
        AgentTaskApi.SetRunHeaders(http, task);
        if (!started && await run is { Status: not TaskStatus.Completed } failed)
            return AgentTaskApi.SyncOutcome(failed, http).Result;
        return TypedResults.ServerSentEvents(ReadAsync(channel.Reader, run, chunks, request.IncludeUsage));
    }

    private static async IAsyncEnumerable<SseItem<string>> ReadAsync(ChannelReader<JsonObject> reader, Task<AgentTask> run, ChunkWriter chunks,
        bool includeUsage, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        try
        {
            await foreach (var chunk in reader.ReadAllAsync(cancellationToken)) yield return Data(chunk);
            var done = await run;
            if (done.Status != TaskStatus.Completed)
            {
                // The status line is gone: the error goes in the stream, as OpenAI sends one (the SDKs raise it), and no [DONE].
                var problem = (ProblemHttpResult)AgentTaskApi.SyncOutcome(done, new DefaultHttpContext()).Result;
                var error = new OpenAiError(OpenAiErrorWriter.Describe(problem.ProblemDetails, problem.StatusCode));
                yield return Data(JsonSerializer.SerializeToNode(error, ChunkWriter.Json)!.AsObject());
                yield break;
            }
            foreach (var chunk in chunks.Finish(done, includeUsage)) yield return Data(chunk);
            yield return new SseItem<string>("[DONE]");
        }
        finally
        {
            // The run records the task (cancelled, when the client went away) with this request's services: let it finish.
            await run.ContinueWith(_ => { }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
        }
    }

    private static SseItem<string> Data(JsonObject json) => new(json.ToJsonString(ChunkWriter.Json));

    public static async Task<IResult> EmbeddingsAsync(EmbeddingsRequest request, [FromServices] ClientEmbeddings embeddings,
        [FromServices] ILogger<ClientEmbeddings> logger, HttpContext http)
    {
        var name = embeddings.Names.FirstOrDefault(n => string.Equals(n, request.Model?.Trim(), StringComparison.OrdinalIgnoreCase));
        if (name is null)
        {
            return TypedResults.Problem(statusCode: 404, title: "Model not found",
                detail: $"The embedding model '{request.Model}' is not served here; use {string.Join(" or ", embeddings.Names.Select(n => $"'{n}'"))}.",
                extensions: new Dictionary<string, object?> { [OpenAiErrorWriter.ParamExtension] = "model", [OpenAiErrorWriter.CodeExtension] = "model_not_found" });
        }
        var local = name == RoutingEmbeddings.LocalSpace || embeddings.Model == RoutingEmbeddings.LocalSpace;
        if (local && request.Dimensions is { } dimensions && dimensions != ClientEmbeddings.LocalDimensions)
            return Invalid("dimensions", $"The local embedding has {ClientEmbeddings.LocalDimensions} dimensions; omit dimensions or send that.");

        ClientEmbeddingResult result;
        try
        {
            result = await embeddings.EmbedAsync(request.Texts, name == RoutingEmbeddings.LocalSpace, request.Dimensions, http.RequestAborted);
        }
        catch (Exception e) when (ProviderFailures.IsProviderFailure(e, http.RequestAborted))
        {
            logger.LogWarning(e, "Embeddings from the provider failed");
            // The provider refusing the input (too long, bad dimensions) is the client's to fix; anything else is ours.
            var rejected = e is System.ClientModel.ClientResultException { Status: 400 or 422 };
            return TypedResults.Problem(statusCode: rejected ? 400 : e is OperationCanceledException ? 504 : 502,
                title: "Embedding failed", detail: $"The embedding model '{embeddings.Model}' could not embed the input. {ProviderFailures.Describe(e)}",
                extensions: rejected ? new Dictionary<string, object?> { [OpenAiErrorWriter.ParamExtension] = "input" } : null);
        }

        var base64 = request.EncodingFormat == "base64";
        return TypedResults.Ok(new EmbeddingList("list",
            result.Vectors.Select((vector, i) => new EmbeddingView("embedding", i,
                base64 ? Convert.ToBase64String(MemoryMarshal.AsBytes(vector.AsSpan())) : vector)).ToList(),
            result.Model, new EmbeddingUsage(result.InputTokens, result.InputTokens), new EmbeddingCost(result.CostUsd)));
    }

    /// <summary>OpenAI's <c>user</c> names the end user; memories the agent stores are that user's when it is a valid memory user.</summary>
    private static string? EndUser(string? user) => Engine.Memory.LongTermMemory.CheckUser(user) is null ? user : null;

    private static bool IsAuto(string model) => string.Equals(model, AgentRegistry.Auto, StringComparison.OrdinalIgnoreCase);

    private static ProblemHttpResult ModelNotFound(string model, string? param) =>
        TypedResults.Problem(statusCode: 404, title: "Model not found",
            detail: $"The model '{model}' does not exist or you do not have access to it. GET /v1/models lists the agents this key may use.",
            extensions: new Dictionary<string, object?> { [OpenAiErrorWriter.ParamExtension] = param, [OpenAiErrorWriter.CodeExtension] = "model_not_found" });

    private static ProblemHttpResult Invalid(string param, string message) =>
        TypedResults.Problem(statusCode: 400, title: "Invalid request", detail: message,
            extensions: new Dictionary<string, object?> { [OpenAiErrorWriter.ParamExtension] = param });

    /// <summary>What the winning run answered, and which of its tool calls are the client's to make.</summary>
    internal sealed class Answer(IReadOnlySet<string> clientTools)
    {
        public IReadOnlySet<string> ClientTools { get; } = clientTools;

        public Microsoft.Extensions.AI.ChatResponse? Response { get; set; }

        /// <summary>Calls to the client's functions the run left unanswered (the agent's own tools were answered in the run).</summary>
        public List<FunctionCallContent> ClientCalls()
        {
            if (Response is null || ClientTools.Count == 0) return [];
            var contents = Response.Messages.SelectMany(m => m.Contents).ToList();
            var answered = contents.OfType<FunctionResultContent>().Select(r => r.CallId).ToHashSet();
            return contents.OfType<FunctionCallContent>().Where(c => ClientTools.Contains(c.Name) && !answered.Contains(c.CallId)).ToList();
        }

        public string FinishReason(bool toolCalls) => toolCalls
            ? "tool_calls"
            : Response?.FinishReason == ChatFinishReason.Length ? "length"
            : Response?.FinishReason == ChatFinishReason.ContentFilter ? "content_filter"
            : "stop";
    }

    /// <summary>Builds the chat.completion.chunk objects of one streamed completion.</summary>
    internal sealed class ChunkWriter(AgentTask task, Answer answer)
    {
        public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
        {
            PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        };

        private readonly string _id = ChatCompletion.IdOf(task);
        private readonly long _created = task.CreatedAt.ToUnixTimeSeconds();
        private bool _started;
        private int _toolCalls;

        /// <summary>
        /// The chunks one update of the run makes: its text, and its calls to the client's functions. The agent's own tool
        /// calls and their results stay inside the run.
        /// </summary>
        public IEnumerable<JsonObject> Deltas(ChatResponseUpdate update)
        {
            if (update.Role == ChatRole.Tool) yield break;
            foreach (var content in update.Contents)
            {
                switch (content)
                {
                    case TextContent { Text.Length: > 0 } text:
                        yield return Chunk(Delta(new JsonObject { ["content"] = text.Text }), null);
                        break;
                    case FunctionCallContent call when answer.ClientTools.Contains(call.Name):
                        var toolCall = JsonSerializer.SerializeToNode(ToolCallView.From(call), Json)!.AsObject();
                        toolCall.Insert(0, "index", _toolCalls++);
                        yield return Chunk(Delta(new JsonObject { ["tool_calls"] = new JsonArray(toolCall) }), null);
                        break;
                }
            }
        }

        /// <summary>The chunk with the finish reason, and with include_usage the usage chunk (no choices) OpenAI sends last.</summary>
        public IEnumerable<JsonObject> Finish(AgentTask done, bool includeUsage)
        {
            var finish = Chunk(Delta([]), answer.FinishReason(_toolCalls > 0));
            finish["agent_platform"] = JsonSerializer.SerializeToNode(PlatformView.From(done), Json);
            yield return finish;
            if (!includeUsage) yield break;
            var usage = Chunk(null, null);
            usage["usage"] = JsonSerializer.SerializeToNode(CompletionUsage.From(done), Json);
            yield return usage;
        }

        // The first delta says who speaks, as OpenAI's first chunk does.
        private JsonObject Delta(JsonObject delta)
        {
            if (!_started) delta.Insert(0, "role", "assistant");
            _started = true;
            return delta;
        }

        private JsonObject Chunk(JsonObject? delta, string? finishReason) => new()
        {
            ["id"] = _id,
            ["object"] = "chat.completion.chunk",
            ["created"] = _created,
            ["model"] = task.Agent,
            ["choices"] = delta is null
                ? new JsonArray()
                : new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = delta, ["logprobs"] = null, ["finish_reason"] = finishReason }),
        };
    }
}

public sealed record ModelList(string Object, IReadOnlyList<ModelView> Data);

/// <summary>An agent as an OpenAI model; agents have no creation date, so <c>created</c> is 0.</summary>
public sealed record ModelView(string Id, string Object, long Created, string OwnedBy, string Description)
{
    public static readonly ModelView Auto = Of(AgentRegistry.Auto, "The platform's router chooses the agent for each request.");

    public static ModelView Of(string name, string description) => new(name, "model", 0, OpenAiApi.Owner, description);
}

/// <summary>
/// OpenAI's chat.completion. <c>model</c> is the agent that answered (the one named, or the router's choice for "auto");
/// <c>agent_platform</c> adds the task, the LLM model and the cost.
/// </summary>
public sealed record ChatCompletion(string Id, string Object, long Created, string Model, IReadOnlyList<ChatCompletionChoice> Choices,
    CompletionUsage Usage, PlatformView AgentPlatform)
{
    public static string IdOf(AgentTask task) => "chatcmpl-" + task.Id.ToString("N");

    internal static ChatCompletion From(AgentTask task, OpenAiApi.Answer answer)
    {
        var calls = answer.ClientCalls();
        var text = task.Result ?? "";
        var message = new ChatCompletionOutput("assistant", text.Length == 0 && calls.Count > 0 ? null : text,
            calls.Count > 0 ? calls.Select(ToolCallView.From).ToList() : null);
        return new ChatCompletion(IdOf(task), "chat.completion", task.CreatedAt.ToUnixTimeSeconds(), task.Agent,
            [new ChatCompletionChoice(0, message, answer.FinishReason(calls.Count > 0), null)], CompletionUsage.From(task), PlatformView.From(task));
    }
}

public sealed record ChatCompletionChoice(int Index, ChatCompletionOutput Message, string FinishReason, object? Logprobs);

public sealed record ChatCompletionOutput(string Role, string? Content,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    IReadOnlyList<ToolCallView>? ToolCalls);

public sealed record ToolCallView(string Id, string Type, FunctionCallView Function)
{
    public static ToolCallView From(FunctionCallContent call) =>
        new(call.CallId, "function", new FunctionCallView(call.Name,
            JsonSerializer.Serialize(call.Arguments ?? new Dictionary<string, object?>(), AIJsonUtilities.DefaultOptions)));
}

public sealed record FunctionCallView(string Name, string Arguments);

public sealed record CompletionUsage(int PromptTokens, int CompletionTokens, int TotalTokens)
{
    /// <summary>Every call of the task (tool loops make several), as metering counted them.</summary>
    public static CompletionUsage From(AgentTask task) =>
        new(task.PromptTokens ?? 0, task.CompletionTokens ?? 0, (task.PromptTokens ?? 0) + (task.CompletionTokens ?? 0));
}

/// <summary>The platform's additions: the task (GET /agent/status/{task_id}), the agent, the LLM model, the strategy, the cost and whether the response cache answered.</summary>
public sealed record PlatformView(Guid TaskId, string Agent, string? Model, string? Strategy, decimal CostUsd, bool Cached)
{
    public static PlatformView From(AgentTask task) =>
        new(task.Id, task.Agent, task.Model, task.Strategy, task.CostUsd ?? 0m, Engine.Caching.CacheOutcomes.IsHit(task.CacheOutcome));
}

public sealed record EmbeddingList(string Object, IReadOnlyList<EmbeddingView> Data, string Model, EmbeddingUsage Usage, EmbeddingCost AgentPlatform);

/// <summary>One vector: an array of floats, or with encoding_format base64 a string of little-endian float32s.</summary>
public sealed record EmbeddingView(string Object, int Index, object Embedding);

public sealed record EmbeddingUsage(long PromptTokens, long TotalTokens);

public sealed record EmbeddingCost(decimal CostUsd);
