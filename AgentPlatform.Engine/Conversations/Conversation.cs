namespace AgentPlatform.Engine.Conversations;

/// <summary>
/// A chat session of one API key (the same session id under another key is another conversation). Clearing it removes
/// its messages but keeps the row, so message numbers never repeat and a stale hot copy can always be told apart.
/// </summary>
public sealed class Conversation
{
    public Guid ApiKeyId { get; set; }
    public string SessionId { get; set; } = "";
    /// <summary>The number of the newest message (or of the last clear); every change takes the next number.</summary>
    public int LastSeq { get; set; }
    public int MessageCount { get; set; }
    /// <summary>The first user message, shortened: what a session list shows.</summary>
    public string? Title { get; set; }
    /// <summary>A summary of the messages up to <see cref="SummaryThrough"/>, made when they no longer fit a context window.</summary>
    public string? Summary { get; set; }
    public int SummaryThrough { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
}

/// <summary>One message of a conversation: the user's, or the agent's reply (its id is the task id of the turn).</summary>
public sealed class ConversationMessage
{
    public Guid Id { get; set; }
    public Guid ApiKeyId { get; set; }
    public string SessionId { get; set; } = "";
    public int Seq { get; set; }
    /// <summary>user or assistant.</summary>
    public string Role { get; set; } = "";
    public string Content { get; set; } = "";
    public string? Agent { get; set; }
    public string? Model { get; set; }
    public Guid? TaskId { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}
