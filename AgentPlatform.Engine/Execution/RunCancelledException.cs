namespace AgentPlatform.Engine.Execution;

/// <summary>
/// A run cancelled after some of its model calls were answered (a tool loop): what those calls cost was spent all the
/// same, and the cancelled task records it. Still an <see cref="OperationCanceledException"/> for every other handler.
/// </summary>
public sealed class RunCancelledException(long inputTokens, long outputTokens, decimal costUsd, CancellationToken token)
    : OperationCanceledException("The run was cancelled.", token)
{
    public long InputTokens { get; } = inputTokens;
    public long OutputTokens { get; } = outputTokens;
    public decimal CostUsd { get; } = costUsd;
}
