namespace AgentPlatform.Engine.Tasks;

/// <summary>Where Hangfire keeps its jobs and queues. Task status always stays in Postgres.</summary>
public enum QueueStorage
{
    /// <summary>The <c>redis</c> connection: a Worker waiting for work is woken by pub/sub, and a job costs Redis round trips only.</summary>
    Redis,
    /// <summary>The <c>agentdb</c> database (schema <c>hangfire</c>): waits by LISTEN/NOTIFY, every job is several Postgres transactions.</summary>
    Postgres,
}

/// <summary>Binds "Queue": how Hangfire hands tasks to Workers.</summary>
public sealed class QueueOptions
{
    public const string SectionName = "Queue";

    /// <summary>
    /// Hangfire's job storage. Redis by default: one Worker drains several times more tasks per second (bench/README.md).
    /// Jobs Redis loses (a restart without persistence) are re-enqueued from the task rows by the maintenance sweep.
    /// </summary>
    public QueueStorage Storage { get; set; } = QueueStorage.Redis;

    /// <summary>
    /// How long a task fetched by a Worker that died stays invisible before another Worker takes it.
    /// Live Workers keep extending it (sliding), so a long task is never taken twice.
    /// </summary>
    public TimeSpan InvisibilityTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// How long Hangfire keeps a finished job (the dashboard's history); the task row keeps the result. Hangfire's default,
    /// a day, is millions of jobs in Redis's memory at hundreds of tasks a second.
    /// </summary>
    public TimeSpan FinishedJobRetention { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>Fallback poll; new jobs normally wake an idle Worker at once (Redis pub/sub, or Postgres LISTEN/NOTIFY).</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Concurrent Hangfire jobs per Worker process (each runs its tasks side by side); tasks mostly wait on the LLM, so more than cores.</summary>
    public int WorkerCount { get; set; } = 20;

    /// <summary>
    /// Least time between two jobs one Api (or Worker) creates for one queue: tasks accepted meanwhile share the next job
    /// (<see cref="TaskQueue"/>). A task accepted after a quiet interval gets its job at once, so only a steady stream waits,
    /// at most this long. Zero: a job per task, unless tasks arrive while a job is being created.
    /// </summary>
    public TimeSpan JobInterval { get; set; } = TimeSpan.FromMilliseconds(10);

    /// <summary>
    /// Most tasks in one job; a Worker runs a job's tasks side by side, so a Worker runs up to WorkerCount × this (and a
    /// Worker's crash re-runs that many). 1: a job per task.
    /// </summary>
    public int MaxTasksPerJob { get; set; } = 32;

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

    /// <summary>
    /// How long a Worker keeps a key's tools and limits between its tasks (<see cref="TaskCallers"/>); a revocation or a
    /// change of limits drops them at once. Zero: every task reads its key from Postgres.
    /// </summary>
    public TimeSpan CallerCacheDuration { get; set; } = TimeSpan.FromSeconds(5);

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
