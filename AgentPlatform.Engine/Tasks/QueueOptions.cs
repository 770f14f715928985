namespace AgentPlatform.Engine.Tasks;

/// <summary>Binds "Queue": how Hangfire on Postgres hands tasks to Workers.</summary>
public sealed class QueueOptions
{
    public const string SectionName = "Queue";

    /// <summary>
    /// How long a task fetched by a Worker that died stays invisible before another Worker takes it.
    /// Live Workers keep extending it (sliding), so a long task is never taken twice.
    /// </summary>
    public TimeSpan InvisibilityTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Fallback poll; new jobs normally wake an idle Worker at once through LISTEN/NOTIFY.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Concurrent tasks per Worker process; tasks mostly wait on the LLM, so more than cores.</summary>
    public int WorkerCount { get; set; } = 20;

    /// <summary>How long running tasks get to finish on shutdown before they go back to the queue.</summary>
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(10);

    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(5);
}
