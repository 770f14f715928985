namespace AgentPlatform.Engine.Tools;

/// <summary>One tool call as the task record shows it.</summary>
public sealed record ToolCallRecord(
    string Tool, string? Arguments, string Outcome, string? Result, string? Error, long DurationMs, DateTimeOffset At);

/// <summary>
/// The tool calls of the task running in this async flow. The task runner opens one per run and
/// stores what was recorded with the task; tool wrappers append to <see cref="Current"/>.
/// </summary>
public sealed class ToolCallLog
{
    private static readonly AsyncLocal<ToolCallLog?> Ambient = new();
    private readonly List<ToolCallRecord> _calls = [];

    public static ToolCallLog? Current => Ambient.Value;

    public IReadOnlyList<ToolCallRecord> Calls
    {
        get { lock (_calls) return _calls.ToList(); }
    }

    public void Add(ToolCallRecord call)
    {
        lock (_calls) _calls.Add(call);
    }

    /// <summary>Makes a new log current for the calling async flow until the returned scope is disposed.</summary>
    public static Scope Begin()
    {
        var scope = new Scope(Ambient.Value);
        Ambient.Value = scope.Log;
        return scope;
    }

    public sealed class Scope(ToolCallLog? previous) : IDisposable
    {
        public ToolCallLog Log { get; } = new();
        public void Dispose() => Ambient.Value = previous;
    }
}
