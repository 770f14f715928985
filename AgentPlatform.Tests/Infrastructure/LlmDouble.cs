using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AgentPlatform.Tests.Infrastructure;

/// <summary>One scripted answer: an HTTP status (200 = a normal completion), a delay, and the text.</summary>
public sealed record LlmStep(int Status = 200, TimeSpan Delay = default, string? Content = null, int PromptTokens = 100, int CompletionTokens = 50);

/// <summary>A call the double received.</summary>
public sealed record LlmCall(string Marker, string Model, string? TraceParent, string UserMessage, DateTimeOffset At, bool Completed);

/// <summary>
/// The only test double: an OpenAI-protocol server (POST /v1/chat/completions) on a real port. A test
/// scripts the answers for prompts containing its own marker word; the n-th call for a marker gets
/// the n-th step (the last step repeats). Unscripted prompts get an instant echo.
/// </summary>
public sealed class LlmDouble : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, LlmStep[]> _scripts = new();
    private readonly ConcurrentDictionary<string, int> _counts = new();
    private readonly ConcurrentQueue<LlmCall> _calls = new();
    private readonly ConcurrentQueue<(string Name, JsonObject Body)> _webhooks = new();
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
        // A client's webhook receiver, for tests of webhook delivery (not part of the OpenAI protocol).
        app.MapPost("/hooks/{name}", async (string name, HttpContext http) =>
        {
            var body = (await JsonNode.ParseAsync(http.Request.Body))!.AsObject();
            llm._webhooks.Enqueue((name, body));
            return llm._failingHooks.TryRemove(name, out _) ? Results.StatusCode(500) : Results.Ok();
        });
        await app.StartAsync();
        return llm;
    }

    /// <summary>Scripts the answers for prompts that contain <paramref name="marker"/>.</summary>
    public void Script(string marker, params LlmStep[] steps) => _scripts[marker] = steps;

    public string WebhookUrl(string name) => BaseUrl.Replace("/v1", "") + "/hooks/" + name;

    /// <summary>The webhook receiver answers 500 to the next delivery for <paramref name="name"/>.</summary>
    public void FailNextWebhook(string name) => _failingHooks[name] = true;

    public IReadOnlyList<JsonObject> WebhooksFor(string name) => _webhooks.Where(w => w.Name == name).Select(w => w.Body).ToList();

    public IReadOnlyList<LlmCall> CallsFor(string marker) => _calls.Where(c => c.Marker == marker).ToList();

    private async Task CompleteAsync(HttpContext http)
    {
        var body = (await JsonNode.ParseAsync(http.Request.Body))!.AsObject();
        var model = body["model"]?.GetValue<string>() ?? "";
        var user = body["messages"]!.AsArray().LastOrDefault(m => m?["role"]?.GetValue<string>() == "user")?["content"];
        var userText = user is JsonValue ? user.GetValue<string>() : user?.ToJsonString() ?? "";
        var marker = _scripts.Keys.FirstOrDefault(userText.Contains) ?? "";
        var step = new LlmStep();
        if (marker.Length > 0)
        {
            var steps = _scripts[marker];
            var n = _counts.AddOrUpdate(marker, 1, (_, c) => c + 1);
            step = steps[Math.Min(n, steps.Length) - 1];
        }

        var call = new LlmCall(marker, model, http.Request.Headers["traceparent"].FirstOrDefault(), userText, DateTimeOffset.UtcNow, false);
        _calls.Enqueue(call);
        try
        {
            if (step.Delay > TimeSpan.Zero) await Task.Delay(step.Delay, http.RequestAborted);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        if (step.Status != 200)
        {
            http.Response.StatusCode = step.Status;
            await http.Response.WriteAsJsonAsync(new { error = new { message = $"scripted failure {step.Status}", type = "server_error" } });
            return;
        }

        _calls.Enqueue(call with { Completed = true, At = DateTimeOffset.UtcNow });
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

    private static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = null };

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

