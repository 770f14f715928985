using System.ComponentModel.DataAnnotations;
using System.Text.Json;
using System.Text.Json.Nodes;
using AgentPlatform.Api.Admission;
using AgentPlatform.Engine.Execution;
using AgentPlatform.Engine.Routing;
using AgentPlatform.Engine.Tasks;

namespace AgentPlatform.Api.Apis;

public sealed class ExecuteRequest : IPromptRequest, IValidatableObject
{
    public const int MaxTaskLength = 100_000;

    [Required, MinLength(1), MaxLength(MaxTaskLength), Display(Name = "task")]
    public string Task { get; init; } = "";

    /// <summary>An agent name, or "auto" (the default) to let the platform choose.</summary>
    [MaxLength(100), Display(Name = "agent_type")]
    public string? AgentType { get; init; }

    /// <summary>Extra facts for the agent; handed to it as JSON.</summary>
    public JsonObject? Context { get; init; }

    public bool AsyncExecution { get; init; }

    public TaskPriority Priority { get; init; } = TaskPriority.Default;

    [MaxLength(100), Display(Name = "session_id")]
    public string? SessionId { get; init; }

    [MaxLength(2000), Display(Name = "webhook_url")]
    public string? WebhookUrl { get; init; }

    /// <summary>single, parallel or cascade; when absent the router chooses from its confidence.</summary>
    [MaxLength(20), Display(Name = "strategy")]
    public string? Strategy { get; init; }

    /// <summary>Participants of a parallel or cascade run, in order; when absent the router's top candidates.</summary>
    [MaxLength(5), Display(Name = "agents")]
    public string[]? Agents { get; init; }

    /// <summary>false: a fresh answer, neither served from nor stored in the response cache (as <c>Cache-Control: no-cache</c>).</summary>
    public bool? Cache { get; init; }

    public IEnumerable<(string Field, string? Text)> PromptFields()
    {
        yield return ("task", Task);
        if (Context is not null) yield return ("context", Context.ToJsonString());
    }

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (string.IsNullOrWhiteSpace(Task))
            yield return new ValidationResult("The task must not be blank.", ["task"]);
        if (WebhookUrl is not null && !(Uri.TryCreate(WebhookUrl, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https"))
            yield return new ValidationResult("The webhook_url must be an absolute http or https URL.", ["webhook_url"]);
        if (Context is not null && Context.ToJsonString().Length > 64_000)
            yield return new ValidationResult("The context must serialise to at most 64,000 characters.", ["context"]);
        if (Strategy is not null && !Strategies.All.Contains(Strategy))
            yield return new ValidationResult("The strategy is single, parallel or cascade.", ["strategy"]);
        if (Agents is { Length: > 0 } && Strategy == Strategies.Single)
            yield return new ValidationResult("agents lists the participants of a parallel or cascade run.", ["agents"]);
        if (Agents is { Length: 1 })
            yield return new ValidationResult("A parallel or cascade run needs at least two agents.", ["agents"]);
    }
}

public sealed record Usage(int PromptTokens, int CompletionTokens, int TotalTokens);

/// <param name="Cached">Served from the response cache (no LLM call: no tokens, no cost).</param>
/// <param name="Cache">The cache's part: exact or semantic (a hit), miss, bypass (the client asked for a fresh answer) or skipped (not cacheable).</param>
public sealed record ExecuteResponse(
    Guid TaskId, string Status, string Agent, string? Result, Usage Usage, decimal CostUsd, long DurationMs, bool Cached, string? Cache,
    string? Model, string? Strategy, RoutingDecision? Routing, IReadOnlyList<AgentRun>? Runs, JsonNode? ToolCalls)
{
    /// <summary>The key was near its daily budget, so cheaper models of the agent's chain were tried first.</summary>
    public bool Degraded => Runs?.Any(r => r.Degraded) == true;
}

public sealed record AcceptedResponse(Guid TaskId, string Status, string StatusUrl, RoutingDecision? Routing);

public sealed record TaskView(
    Guid TaskId, string Status, string Agent, string? Result, string? Error,
    DateTimeOffset CreatedAt, DateTimeOffset? StartedAt, DateTimeOffset? CompletedAt,
    Usage? Usage, decimal? CostUsd, long? DurationMs, string? Model, TaskPriority Priority, string? SessionId, int Attempts,
    string? Strategy, RoutingDecision? Routing, IReadOnlyList<AgentRun>? Runs, JsonNode? ToolCalls, bool Cached, string? Cache)
{
    public static TaskView From(AgentTask t)
    {
        var routing = t.ReadRouting();
        return new(
            t.Id, t.Status, t.Agent, t.Result, t.Error, t.CreatedAt, t.StartedAt, t.CompletedAt,
            t.PromptTokens is null ? null : new Usage(t.PromptTokens.Value, t.CompletionTokens ?? 0, t.PromptTokens.Value + (t.CompletionTokens ?? 0)),
            t.CostUsd, t.DurationMs, t.Model, t.Priority, t.SessionId, t.Attempts,
            t.Strategy, routing?.Decision, routing?.Runs, t.ToolCallsJson is null ? null : JsonNode.Parse(t.ToolCallsJson),
            Engine.Caching.CacheOutcomes.IsHit(t.CacheOutcome), t.CacheOutcome);
    }
}

public sealed class FeedbackRequest
{
    [Required, Display(Name = "task_id")]
    public Guid? TaskId { get; init; }

    [Required, Range(1, 5), Display(Name = "rating")]
    public int? Rating { get; init; }

    [MaxLength(2000), Display(Name = "comment")]
    public string? Comment { get; init; }
}

public sealed record FeedbackResponse(Guid TaskId, int Rating, string? Comment, DateTimeOffset CreatedAt);

internal static class RequestHash
{
    /// <summary>
    /// Fingerprint of what an Idempotency-Key promises: the same key must mean the same request. The
    /// context is hashed as canonical JSON (keys sorted, no whitespace), so a client that re-serialises
    /// the same object in another key order is still sending the same request.
    /// </summary>
    public static string Of(ExecuteRequest request) =>
        Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(JsonSerializer.SerializeToUtf8Bytes(new
        {
            request.Task, request.AgentType, Context = request.Context is null ? null : Canonical(request.Context), request.AsyncExecution,
            request.Priority, request.SessionId, request.WebhookUrl, request.Strategy, request.Agents,
        })));

    internal static string Canonical(JsonNode node)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer)) Write(writer, node);
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static void Write(Utf8JsonWriter writer, JsonNode? node)
    {
        switch (node)
        {
            case JsonObject obj:
                writer.WriteStartObject();
                foreach (var (name, value) in obj.OrderBy(p => p.Key, StringComparer.Ordinal))
                {
                    writer.WritePropertyName(name);
                    Write(writer, value);
                }
                writer.WriteEndObject();
                break;
            case JsonArray array:
                writer.WriteStartArray();
                foreach (var item in array) Write(writer, item);
                writer.WriteEndArray();
                break;
            case null:
                writer.WriteNullValue();
                break;
            default:
                node.WriteTo(writer);
                break;
        }
    }
}
