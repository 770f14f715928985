namespace AgentPlatform.Engine.Tasks;

/// <summary>A client's rating of one of its tasks; the latest rating per task counts.</summary>
public sealed class TaskFeedback
{
    public Guid TaskId { get; set; }
    public Guid ApiKeyId { get; set; }
    public int Rating { get; set; }
    public string? Comment { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}
