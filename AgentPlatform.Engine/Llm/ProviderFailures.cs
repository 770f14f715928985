using System.ClientModel;
using System.Text.Json;
using Polly.CircuitBreaker;
using Polly.Timeout;

namespace AgentPlatform.Engine.Llm;

/// <summary>What counts as the provider failing (as opposed to our caller cancelling), and how to say it.</summary>
public static class ProviderFailures
{
    public static bool IsProviderFailure(Exception e, CancellationToken callerToken) => e switch
    {
        ClientResultException or HttpRequestException or TimeoutRejectedException or BrokenCircuitException or JsonException => true,
        // HttpClient's own timeout surfaces as a cancellation nobody asked for.
        OperationCanceledException => !callerToken.IsCancellationRequested,
        AgentUnavailableException => true,
        _ => false,
    };

    /// <summary>A failure the model is to blame for; 400/422 are our request's fault and do not open a breaker.</summary>
    public static bool CountsAgainstBreaker(Exception e, CancellationToken callerToken) =>
        IsProviderFailure(e, callerToken) && e is not BrokenCircuitException && e is not ClientResultException { Status: 400 or 422 };

    public static string Describe(Exception e)
    {
        var message = e switch
        {
            AgentUnavailableException u => u.Message,
            ClientResultException c => $"LLM provider answered HTTP {c.Status}: {c.Message}",
            TimeoutRejectedException or OperationCanceledException => "LLM provider did not answer in time.",
            BrokenCircuitException => "LLM provider is unavailable (circuit open).",
            HttpRequestException h => $"LLM provider could not be reached: {h.Message}",
            _ => $"LLM provider failed: {e.Message}",
        };
        return message.Length <= 2000 ? message : message[..2000];
    }
}

/// <summary>Every model of an agent's chain failed or has an open circuit breaker.</summary>
public sealed class AgentUnavailableException(string agent, TimeSpan retryAfter, IReadOnlyList<ModelAttempt> attempts)
    : Exception($"Agent '{agent}' is unavailable: " + string.Join("; ", attempts.Select(a => $"{a.Provider}/{a.Model}: {a.Outcome}" + (a.Error is null ? "" : $" ({a.Error})"))))
{
    public string Agent { get; } = agent;
    /// <summary>When the first open breaker of the chain lets a probe through.</summary>
    public TimeSpan RetryAfter { get; } = retryAfter;
    public IReadOnlyList<ModelAttempt> Attempts { get; } = attempts;
}

/// <summary>One model tried (or skipped) for a call: outcome is ok, failed or circuit_open.</summary>
public sealed record ModelAttempt(string Provider, string Model, string Outcome, string? Error, long DurationMs);
