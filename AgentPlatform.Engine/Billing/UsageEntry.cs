namespace AgentPlatform.Engine.Billing;

/// <summary>
/// One billable call in the usage ledger: a chat completion (a task's run, a retry's answer, a fallback model, a summary
/// of older turns), an embedding, or a cache hit that stood in for a call. Written once, never updated.
/// </summary>
public sealed class UsageEntry
{
    public Guid Id { get; set; }
    /// <summary>The key the call was made for; null for the platform's own calls (no caller in scope).</summary>
    public Guid? ApiKeyId { get; set; }
    /// <summary>The agent whose pipeline made the call; null for embeddings.</summary>
    public string? Agent { get; set; }
    public string Model { get; set; } = "";
    /// <summary>What the call was: <see cref="UsageKinds"/>.</summary>
    public string Kind { get; set; } = UsageKinds.Chat;
    public long InputTokens { get; set; }
    public long OutputTokens { get; set; }
    /// <summary>What the provider charges for the call, priced where the call was metered (8 decimals, like a task's cost).</summary>
    public decimal CostUsd { get; set; }
    /// <summary>null for a call that reached a model; <c>exact</c> or <c>semantic</c> for an answer served from a cache (cost 0).</summary>
    public string? CacheOutcome { get; set; }
    public Guid? TaskId { get; set; }
    public string? SessionId { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}

/// <summary>The kinds of ledger entries.</summary>
public static class UsageKinds
{
    /// <summary>A chat completion made by an agent's run (each call of a tool loop is one).</summary>
    public const string Chat = "chat";
    /// <summary>A chat completion that summarized a conversation's older turns.</summary>
    public const string Summary = "summary";
    /// <summary>A classification call of the router's tie-breaker (the key's, before any task exists).</summary>
    public const string Routing = "routing";
    /// <summary>An embedding call at the provider (routing, long-term memory, /v1/embeddings).</summary>
    public const string Embedding = "embedding";

    /// <summary>The kinds a task's own cost is made of (embeddings are the key's, not the task's).</summary>
    public static bool IsTaskCost(string kind) => kind is Chat or Summary;
}

