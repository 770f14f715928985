using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AgentPlatform.Tests.Infrastructure;

/// <summary>
/// One scripted answer: an HTTP status (200 = a normal completion), a delay, the text, or tool calls
/// the model asks for (the client is expected to answer them in its next request).
/// When the client streams, the content goes out in word-sized chunks, <see cref="ChunkDelay"/> apart.</summary>
public sealed record LlmStep(int Status = 200, TimeSpan Delay = default, string? Content = null, int PromptTokens = 100,
    int CompletionTokens = 50, ToolCallStep[]? ToolCalls = null, TimeSpan ChunkDelay = default);

/// <summary>A tool call the scripted model makes: the tool's name and its arguments as JSON.</summary>
public sealed record ToolCallStep(string Name, string ArgumentsJson);

/// <summary>A webhook delivery the double's receiver got: the parsed body, the exact bytes and the signature headers.</summary>
public sealed record WebhookDelivery(string Name, JsonObject Body, byte[] RawBody, string? Timestamp, string? Signature);

/// <summary>A call the double received (Completed marks the answer it sent back).</summary>
public sealed record LlmCall(string Marker, string Model, string? TraceParent, string UserMessage, DateTimeOffset At, bool Completed,
    JsonArray? Messages = null, JsonArray? Tools = null, string? Authorization = null, JsonObject? Body = null);

/// <summary>
/// The only test double: an OpenAI-protocol server (POST /v1/chat/completions) on a real port. A test
/// scripts the answers for prompts containing its own marker word; the n-th call for a marker gets
/// the n-th step (the last step repeats). Unscripted prompts get an instant echo.
/// </summary>
public sealed class LlmDouble : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, LlmStep[]> _scripts = new();
    private readonly ConcurrentDictionary<string, LlmStep[]> _modelScripts = new();
    private readonly ConcurrentDictionary<string, int> _counts = new();
    private readonly ConcurrentQueue<LlmCall> _calls = new();
    private readonly ConcurrentQueue<(string Marker, DateTimeOffset At)> _aborted = new();
    private readonly ConcurrentQueue<WebhookDelivery> _webhooks = new();
    private readonly ConcurrentDictionary<string, bool> _failingHooks = new();

    public string BaseUrl { get; }
    public IReadOnlyCollection<LlmCall> Calls => _calls;

    private LlmDouble(WebApplication app, string baseUrl)
    {
        _app = app;
        BaseUrl = baseUrl;
    }

    public static async Task<LlmDouble> StartAsync()
    {
        var port = Processes.FreePort();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var llm = new LlmDouble(app, $"http://127.0.0.1:{port}/v1");
        app.MapPost("/v1/chat/completions", llm.CompleteAsync);
        app.MapPost("/v1/embeddings", llm.EmbedAsync);
        // A client's webhook receiver, for tests of webhook delivery (not part of the OpenAI protocol).
        app.MapPost("/hooks/{name}", async (string name, HttpContext http) =>
        {
            using var raw = new MemoryStream();
            await http.Request.Body.CopyToAsync(raw);
            llm._webhooks.Enqueue(new WebhookDelivery(name, JsonNode.Parse(raw.ToArray())!.AsObject(), raw.ToArray(),
                http.Request.Headers["X-AgentPlatform-Timestamp"].FirstOrDefault(), http.Request.Headers["X-AgentPlatform-Signature"].FirstOrDefault()));
            return llm._failingHooks.TryRemove(name, out _) ? Results.StatusCode(500) : Results.Ok();
        });
        await app.StartAsync();
        return llm;
    }

    /// <summary>Scripts the answers for prompts that contain <paramref name="marker"/>.</summary>
    public void Script(string marker, params LlmStep[] steps) => _scripts[marker] = steps;

    /// <summary>Scripts the answers of one model (used when no marker matches); replaces its earlier script and count.</summary>
    public void ScriptModel(string model, params LlmStep[] steps)
    {
        _modelScripts[model] = steps;
        _counts.TryRemove("model:" + model, out _);
    }

    private readonly ConcurrentDictionary<string, int> _rejectedKeys = new();

    /// <summary>Answers every request made with this provider key with <paramref name="status"/> (401 or 429).</summary>
    public void RejectKey(string key, int status) => _rejectedKeys[key] = status;

    /// <summary>Delay of every unscripted answer (benchmarks set a fixed LLM latency with it).</summary>
    public TimeSpan DefaultDelay { get; set; }

    public IReadOnlyList<LlmCall> CallsForModel(string model) => _calls.Where(c => c.Model == model && !c.Completed).ToList();

    public string WebhookUrl(string name) => BaseUrl.Replace("/v1", "") + "/hooks/" + name;

    /// <summary>The webhook receiver answers 500 to the next delivery for <paramref name="name"/>.</summary>
    public void FailNextWebhook(string name) => _failingHooks[name] = true;

    public IReadOnlyList<JsonObject> WebhooksFor(string name) => _webhooks.Where(w => w.Name == name).Select(w => w.Body).ToList();

    /// <summary>Every delivery to <paramref name="name"/> as received: raw body and signature headers.</summary>
    public IReadOnlyList<WebhookDelivery> DeliveriesFor(string name) => _webhooks.Where(w => w.Name == name).ToList();

    public IReadOnlyList<LlmCall> CallsFor(string marker) => _calls.Where(c => c.Marker == marker).ToList();

    /// <summary>When calls for the marker were abandoned by the client (the platform cancelled them) before they were answered.</summary>
    public IReadOnlyList<DateTimeOffset> AbortedCallsFor(string marker) => _aborted.Where(a => a.Marker == marker).Select(a => a.At).ToList();

    private async Task CompleteAsync(HttpContext http)
    {
        var body = (await JsonNode.ParseAsync(http.Request.Body))!.AsObject();
        var model = body["model"]?.GetValue<string>() ?? "";
        var user = body["messages"]!.AsArray().LastOrDefault(m => m?["role"]?.GetValue<string>() == "user")?["content"];
        var userText = user is JsonValue ? user.GetValue<string>() : user?.ToJsonString() ?? "";
        var marker = _scripts.Keys.FirstOrDefault(userText.Contains) ?? "";
        var step = new LlmStep(Delay: DefaultDelay);
        if (marker.Length > 0)
        {
            var steps = _scripts[marker];
            var n = _counts.AddOrUpdate(marker, 1, (_, c) => c + 1);
            step = steps[Math.Min(n, steps.Length) - 1];
        }
        else if (_modelScripts.TryGetValue(model, out var modelSteps))
        {
            var n = _counts.AddOrUpdate("model:" + model, 1, (_, c) => c + 1);
            step = modelSteps[Math.Min(n, modelSteps.Length) - 1];
        }

        var authorization = http.Request.Headers.Authorization.FirstOrDefault() ?? "";
        if (_rejectedKeys.TryGetValue(authorization.Replace("Bearer ", ""), out var rejection)) step = new LlmStep(Status: rejection);

        var call = new LlmCall(marker, model, http.Request.Headers["traceparent"].FirstOrDefault(), userText, DateTimeOffset.UtcNow, false,
            body["messages"]!.AsArray().DeepClone().AsArray(), body["tools"]?.AsArray().DeepClone().AsArray(),
            http.Request.Headers.Authorization.FirstOrDefault(), body.DeepClone().AsObject());
        _calls.Enqueue(call);
        try
        {
            if (step.Delay > TimeSpan.Zero) await Task.Delay(step.Delay, http.RequestAborted);
        }
        catch (OperationCanceledException)
        {
            _aborted.Enqueue((marker, DateTimeOffset.UtcNow));
            return;
        }

        if (step.Status != 200)
        {
            http.Response.StatusCode = step.Status;
            await http.Response.WriteAsJsonAsync(new { error = new { message = $"scripted failure {step.Status}", type = "server_error" } });
            return;
        }

        if (body["stream"]?.GetValue<bool>() == true)
        {
            if (await StreamAsync(http, body, model, step, userText, marker)) _calls.Enqueue(call with { Completed = true, At = DateTimeOffset.UtcNow });
            return;
        }
        _calls.Enqueue(call with { Completed = true, At = DateTimeOffset.UtcNow });
        if (step.ToolCalls is { Length: > 0 })
        {
            await http.Response.WriteAsJsonAsync(new
            {
                id = "chatcmpl-" + Guid.NewGuid().ToString("N"),
                @object = "chat.completion",
                created = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
                model,
                choices = new[]
                {
                    new
                    {
                        index = 0,
                        message = new
                        {
                            role = "assistant",
                            content = (string?)null,
                            tool_calls = step.ToolCalls.Select((t, i) => new
                            {
                                id = $"call_{i}_{Guid.NewGuid():N}"[..24],
                                type = "function",
                                function = new { name = t.Name, arguments = t.ArgumentsJson },
                            }).ToArray(),
                        },
                        finish_reason = "tool_calls",
                    },
                },
                usage = new { prompt_tokens = step.PromptTokens, completion_tokens = step.CompletionTokens, total_tokens = step.PromptTokens + step.CompletionTokens },
            }, JsonOptions);
            return;
        }
        await http.Response.WriteAsJsonAsync(new
        {
            id = "chatcmpl-" + Guid.NewGuid().ToString("N"),
            @object = "chat.completion",
            created = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
            model,
            choices = new[]
            {
                new { index = 0, message = new { role = "assistant", content = step.Content ?? $"double answer to: {userText}" }, finish_reason = "stop" },
            },
            usage = new { prompt_tokens = step.PromptTokens, completion_tokens = step.CompletionTokens, total_tokens = step.PromptTokens + step.CompletionTokens },
        }, JsonOptions);
    }

    /// <summary>
    /// OpenAI's streaming format: chunks with a delta (the content in word-sized pieces, or the tool calls), a last chunk with
    /// the finish reason, a usage chunk when stream_options.include_usage asks for one, then [DONE].
    /// </summary>
    private async Task<bool> StreamAsync(HttpContext http, JsonObject body, string model, LlmStep step, string userText, string marker)
    {
        http.Response.ContentType = "text/event-stream";
        var id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        async Task Send(object chunk)
        {
            await http.Response.WriteAsync("data: " + JsonSerializer.Serialize(chunk, JsonOptions) + "\n\n");
            await http.Response.Body.FlushAsync();
        }
        object Chunk(object delta, string? finish) => new
        {
            id, @object = "chat.completion.chunk", created, model,
            choices = new[] { new { index = 0, delta, finish_reason = finish } },
        };
        try
        {
            if (step.ToolCalls is { Length: > 0 })
            {
                await Send(Chunk(new
                {
                    role = "assistant",
                    tool_calls = step.ToolCalls.Select((t, i) => new
                    {
                        index = i, id = $"call_{i}_{Guid.NewGuid():N}"[..24], type = "function",
                        function = new { name = t.Name, arguments = t.ArgumentsJson },
                    }).ToArray(),
                }, null));
                await Send(Chunk(new { }, "tool_calls"));
            }
            else
            {
                var content = step.Content ?? $"double answer to: {userText}";
                await Send(Chunk(new { role = "assistant", content = "" }, null));
                foreach (var piece in System.Text.RegularExpressions.Regex.Split(content, @"(?<=\s)"))
                {
                    if (piece.Length == 0) continue;
                    if (step.ChunkDelay > TimeSpan.Zero) await Task.Delay(step.ChunkDelay, http.RequestAborted);
                    await Send(Chunk(new { content = piece }, null));
                }
                await Send(Chunk(new { }, "stop"));
            }
            if (body["stream_options"]?["include_usage"]?.GetValue<bool>() == true)
            {
                await Send(new
                {
                    id, @object = "chat.completion.chunk", created, model, choices = Array.Empty<object>(),
                    usage = new { prompt_tokens = step.PromptTokens, completion_tokens = step.CompletionTokens, total_tokens = step.PromptTokens + step.CompletionTokens },
                });
            }
            await http.Response.WriteAsync("data: [DONE]\n\n");
            return true;
        }
        catch (Exception e) when (e is OperationCanceledException or IOException)
        {
            _aborted.Enqueue((marker, DateTimeOffset.UtcNow));
            return false;
        }
    }

    /// <summary>When set, /v1/embeddings answers with this status (a failing embeddings endpoint).</summary>
    public int? EmbeddingFailureStatus { get; set; }

    /// <summary>Number of /v1/embeddings requests received.</summary>
    public int EmbeddingCalls => _embeddingCalls;
    private int _embeddingCalls;

    // Deterministic vectors (the platform's own local embedding): texts that share words are close, as with a real model.
    private async Task EmbedAsync(HttpContext http)
    {
        Interlocked.Increment(ref _embeddingCalls);
        if (EmbeddingFailureStatus is { } failure)
        {
            http.Response.StatusCode = failure;
            await http.Response.WriteAsJsonAsync(new { error = new { message = $"scripted embeddings failure {failure}", type = "server_error" } });
            return;
        }
        var body = (await JsonNode.ParseAsync(http.Request.Body))!.AsObject();
        var input = body["input"]!;
        var texts = input is JsonArray array ? array.Select(t => t!.GetValue<string>()).ToList() : [input.GetValue<string>()];
        await http.Response.WriteAsJsonAsync(new
        {
            @object = "list",
            model = body["model"]?.GetValue<string>() ?? "",
            data = texts.Select((text, i) => new { @object = "embedding", index = i, embedding = AgentPlatform.Engine.Routing.LocalEmbeddingGenerator.Embed(text) }).ToArray(),
            usage = new { prompt_tokens = texts.Sum(t => t.Length / 4 + 1), total_tokens = texts.Sum(t => t.Length / 4 + 1) },
        }, JsonOptions);
    }

    private static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = null };

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

