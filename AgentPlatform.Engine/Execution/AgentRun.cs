using System.Text.Json.Serialization;
using AgentPlatform.Engine.Llm;
using Microsoft.Extensions.AI;

namespace AgentPlatform.Engine.Execution;

/// <summary>One agent's part in a task: outcome ok, failed, timeout (its time limit), unavailable, cancelled or not_chosen.</summary>
public sealed record AgentRun(
    string Agent, string Outcome, string? Provider, string? Model, string? Text, string? FinishReason,
    long PromptTokens, long CompletionTokens, decimal CostUsd, long DurationMs, string? Error,
    IReadOnlyList<ModelAttempt> Attempts, TimeSpan? RetryAfter = null)
{
    [JsonIgnore]
    public bool Succeeded => Outcome == "ok";

    /// <summary>The key was near its daily budget and this run tried its agent's cheaper models first.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool Degraded { get; init; }

    /// <summary>The model's whole answer (messages, tool calls it asks the client for); not stored.</summary>
    [JsonIgnore]
    public ChatResponse? Response { get; init; }

    /// <summary>Acceptable for a parallel run: it answered, with text, and stopped on its own (not cut off).</summary>
    [JsonIgnore]
    public bool Acceptable => Succeeded && !string.IsNullOrWhiteSpace(Text) && FinishReason is null or "stop";
}

/// <summary>The outcome of a task's execution: the answer and every run that contributed (or tried).</summary>
public sealed record ExecutionResult(string Strategy, AgentRun? Winner, IReadOnlyList<AgentRun> Runs)
{
    [JsonIgnore]
    public long PromptTokens => Runs.Sum(r => r.PromptTokens);
    public long CompletionTokens => Runs.Sum(r => r.CompletionTokens);
    /// <summary>What was actually spent: every run that got an answer back, winner or not.</summary>
    public decimal CostUsd => Runs.Sum(r => r.CostUsd);
}
