namespace AgentPlatform.Engine.Billing;

/// <summary>
/// Who the calls of the current async flow are for: the key, and the task and session when a task runs. The Api opens one
/// for every authenticated request, the task runner one around each task's run (inside the request's, for sync tasks);
/// the places that price calls (<see cref="Llm.MeteringChatClient"/>, <see cref="Routing.RoutingEmbeddings.Meter"/>)
/// read it when they write to the <see cref="UsageLedger"/>. Parallel runs started inside share it.
/// </summary>
public sealed class UsageScope
{
    private static readonly AsyncLocal<UsageScope?> Ambient = new();

    private UsageScope(Guid? apiKeyId, Guid? taskId, string? sessionId, string? kind)
    {
        ApiKeyId = apiKeyId;
        TaskId = taskId;
        SessionId = sessionId;
        Kind = kind;
    }

    public Guid? ApiKeyId { get; }
    public Guid? TaskId { get; }
    public string? SessionId { get; }

    /// <summary>What chat calls in this flow are (<see cref="UsageKinds.Summary"/>); null means <see cref="UsageKinds.Chat"/>.</summary>
    public string? Kind { get; }

    /// <summary>The scope of the calling async flow, or null when nobody is being served (start-up work).</summary>
    public static UsageScope? Current => Ambient.Value;

    /// <summary>Calls made from here on, until the result is disposed, are for this key (and task and session).</summary>
    public static IDisposable Begin(Guid? apiKeyId, Guid? taskId = null, string? sessionId = null) =>
        Enter(new UsageScope(apiKeyId, taskId, sessionId, null));

    /// <summary>Chat calls made from here on, until the result is disposed, are of <paramref name="kind"/>; who they are for stays.</summary>
    public static IDisposable BeginKind(string kind)
    {
        var current = Ambient.Value;
        return Enter(new UsageScope(current?.ApiKeyId, current?.TaskId, current?.SessionId, kind));
    }

    private static Restore Enter(UsageScope scope)
    {
        var previous = Ambient.Value;
        Ambient.Value = scope;
        return new Restore(previous);
    }

    private sealed class Restore(UsageScope? previous) : IDisposable
    {
        public void Dispose() => Ambient.Value = previous;
    }
}
