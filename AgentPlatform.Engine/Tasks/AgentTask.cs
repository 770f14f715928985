namespace AgentPlatform.Engine.Tasks;

/// <summary>A task posted to an agent: its request, its state and, once final, its outcome.</summary>
public sealed class AgentTask
{
    public Guid Id { get; set; }
    public Guid ApiKeyId { get; set; }
    public string Agent { get; set; } = "";
    public string Input { get; set; } = "";
    /// <summary>The request's <c>context</c> object as JSON, handed to the agent with the task.</summary>
    public string? ContextJson { get; set; }
    public TaskPriority Priority { get; set; } = TaskPriority.Default;
    public string? SessionId { get; set; }
    public string? WebhookUrl { get; set; }
    public bool IsAsync { get; set; }

    public string Status { get; set; } = TaskStatus.Queued;
    public string? Result { get; set; }
    public string? Error { get; set; }
    public string? Model { get; set; }
    public int? PromptTokens { get; set; }
    public int? CompletionTokens { get; set; }
    public decimal? CostUsd { get; set; }
    public long? DurationMs { get; set; }
    /// <summary>The router's decision (chosen agent, confidence, strategy, candidates) as JSON.</summary>
    public string? RoutingJson { get; set; }
    /// <summary>single, parallel or cascade.</summary>
    public string? Strategy { get; set; }
    /// <summary>The tool calls made while the task ran (<see cref="Tools.ToolCallRecord"/> list as JSON).</summary>
    public string? ToolCallsJson { get; set; }
    /// <summary>
    /// The response cache's part in the task (<see cref="Caching.CacheOutcomes"/>): bypass when the client asked for a fresh
    /// answer (set when the task is submitted), else what the run's lookup found; null for a task the cache never saw.
    /// </summary>
    public string? CacheOutcome { get; set; }
    /// <summary>How many times a worker has started this task (a crash or shutdown makes it more than one).</summary>
    public int Attempts { get; set; }
    /// <summary>The run that holds the task while it is running (a token per run, not per process).</summary>
    public Guid? LeaseOwner { get; set; }
    /// <summary>Until when the holder's claim stands; the holder renews it, and after it another run may take over.</summary>
    public DateTimeOffset? LeaseExpiresAt { get; set; }

    public string? IdempotencyKey { get; set; }
    public string? RequestHash { get; set; }
    public string? JobId { get; set; }
    /// <summary>W3C traceparent of the request that created the task; the job continues that trace.</summary>
    public string? TraceParent { get; set; }

    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? StartedAt { get; set; }
    public DateTimeOffset? CompletedAt { get; set; }

    public bool IsFinal => TaskStatus.IsFinal(Status);

    /// <summary>Set (not stored) when this run was refused by a token limit or budget before any LLM call.</summary>
    [System.ComponentModel.DataAnnotations.Schema.NotMapped]
    public Admission.SpendRefusal? Refusal { get; set; }

    /// <summary>Set (not stored) when the run's admission checked the request limit: the figures for the X-RateLimit headers.</summary>
    [System.ComponentModel.DataAnnotations.Schema.NotMapped]
    public Admission.RateLimitDecision? RequestLimit { get; set; }

    /// <summary>
    /// Not stored: a plain sync task whose row is written once it finished (<see cref="TaskWriteBehind"/>). It runs without
    /// a lease (no other run can see it) and is cancelled by its request closing.
    /// </summary>
    [System.ComponentModel.DataAnnotations.Schema.NotMapped]
    public bool WrittenBehind { get; set; }

    /// <summary>
    /// Not stored: <see cref="RoutingJson"/> as the object it is written from, kept by the process that routed or ran the task,
    /// so a sync request neither parses the routing it has just serialized nor serializes one only a stored row needs (a task
    /// written behind has its JSON made by the batch writer, off the request).
    /// </summary>
    [System.ComponentModel.DataAnnotations.Schema.NotMapped]
    public TaskRouting? Routing { get; set; }

    /// <summary>The routing and runs: the object in hand, else the stored JSON parsed.</summary>
    public TaskRouting? ReadRouting() => Routing ?? TaskRouting.FromJson(RoutingJson);

    /// <summary>The routing as stored: the stored JSON, else the object serialized.</summary>
    public string? RoutingJsonToStore() => RoutingJson ?? Routing?.ToJson();
}

public static class TaskStatus
{
    public const string Queued = "queued";
    public const string Running = "running";
    public const string Completed = "completed";
    public const string Failed = "failed";
    public const string Cancelled = "cancelled";

    public static bool IsFinal(string status) => status is Completed or Failed or Cancelled;
}

public enum TaskPriority
{
    High,
    Default,
    Low,
}
