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

    /// <summary>
    /// A reason a tenant may read: the kind of failure and the provider's status code, never the
    /// provider's response body or exception text (they can echo prompts, keys, internal hosts). The
    /// full exception goes to the logs and the trace where the failure is handled.
    /// </summary>
    public static string Describe(Exception e) => e switch
    {
        // Its message is built from the attempts' reasons, which went through this method.
        AgentUnavailableException u => u.Message,
        ClientResultException { Status: 429 } => "The provider rate limited the request (429).",
        ClientResultException { Status: 401 or 403 } c => $"The provider refused the platform's credentials ({c.Status}).",
        ClientResultException { Status: 408 } => "The provider timed out (408).",
        ClientResultException { Status: >= 500 } c => $"The provider answered {c.Status} (server error).",
        ClientResultException { Status: >= 400 } c => $"The provider rejected the request ({c.Status}).",
        ClientResultException { Status: > 0 } c => $"The provider answered {c.Status}.",
        ClientResultException => "The provider could not be reached.",
        TimeoutRejectedException or OperationCanceledException => "The provider timed out.",
        BrokenCircuitException => "The provider is unavailable (circuit open).",
        HttpRequestException { HttpRequestError: HttpRequestError.NameResolutionError } => "The provider could not be reached (name resolution failed).",
        HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError } => "The provider could not be reached (connection failed).",
        HttpRequestException { HttpRequestError: HttpRequestError.SecureConnectionError } => "The provider could not be reached (TLS failed).",
        HttpRequestException => "The provider could not be reached.",
        JsonException => "The provider's answer could not be read.",
        _ => "The provider call failed.",
    };
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
