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

    /// <summary>How long a Hangfire lock (a job's state change, the recurring-job scheduler) outlives a holder that died.</summary>
    public TimeSpan DistributedLockTimeout { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// How long a run's claim on a task stands without renewal. The run renews it every third of this; a run
    /// whose process died loses the task this long after its last renewal, and the maintenance sweep hands it on.
    /// </summary>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How many runs a task gets (crashes, lost leases); past this it ends as failed instead of looping.</summary>
    public int MaxAttempts { get; set; } = 3;

    /// <summary>How often a Worker sweeps for expired leases and tasks without a job.</summary>
    public TimeSpan MaintenanceInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// A queued task older than this has its Hangfire job checked; a job that can no longer start it (gone, finished,
    /// or processing on a dead server) is replaced.
    /// </summary>
    public TimeSpan StrandedAfter { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>How long a finished run keeps trying to record its result (a database outage) before giving up.</summary>
    public TimeSpan RecordResultTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// Plain sync tasks (no session, no Idempotency-Key) are stored after their run, in batches, instead of before and after
    /// it (<see cref="TaskWriteBehind"/>). Off: every sync task is stored before it runs.
    /// </summary>
    public bool WriteBehind { get; set; } = true;

    /// <summary>
    /// Most finished sync tasks held unwritten (Postgres away); past it, sync tasks are stored before they run again, so an
    /// outage answers 503 instead of growing the buffer.
    /// </summary>
    public int WriteBehindMaxPending { get; set; } = 10_000;
}
