using System.Diagnostics;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;

namespace AgentPlatform.Engine.Llm;

/// <summary>Runs each call to one model through its Polly circuit breaker and records the outcome.</summary>
public sealed class CircuitBreakerChatClient(IChatClient inner, ModelBreaker breaker) : DelegatingChatClient(inner)
{
    public ModelBreaker Breaker { get; } = breaker;

    public override async Task<ChatResponse> GetResponseAsync(
        IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        try
        {
            var response = await Breaker.Pipeline.ExecuteAsync(
                async token => await base.GetResponseAsync(messages, options, token), cancellationToken);
            Breaker.RecordSuccess(clock.Elapsed);
            return response;
        }
        catch (Exception e) when (ProviderFailures.CountsAgainstBreaker(e, cancellationToken))
        {
            Breaker.RecordFailure(ProviderFailures.Describe(e));
            throw;
        }
    }

    /// <summary>A stream counts as a success or failure by its first update; later errors reach the caller.</summary>
    public override async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(
        IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        await using var updates = base.GetStreamingResponseAsync(messages, options, cancellationToken).GetAsyncEnumerator(cancellationToken);
        bool more;
        try
        {
            more = await Breaker.Pipeline.ExecuteAsync(async _ => await updates.MoveNextAsync(), cancellationToken);
            Breaker.RecordSuccess(clock.Elapsed);
        }
        catch (Exception e) when (ProviderFailures.CountsAgainstBreaker(e, cancellationToken))
        {
            Breaker.RecordFailure(ProviderFailures.Describe(e));
            throw;
        }
        while (more)
        {
            yield return updates.Current;
            more = await updates.MoveNextAsync();
        }
    }
}

/// <summary>
/// An agent's model chain: tries each model in order, past open breakers (Polly refuses those
/// without calling the model, and lets one probe through after the break) and failing models, and
/// answers with the first success. When none answers: <see cref="AgentUnavailableException"/> with
/// the earliest moment an open breaker lets a probe through.
/// Every call's attempts go to <see cref="ModelAttemptLog.Current"/>.
/// </summary>
public sealed class FallbackChatClient(string agent, IReadOnlyList<FallbackChatClient.Link> chain) : IChatClient
{
    public sealed record Link(string Provider, string Model, CircuitBreakerChatClient Client);

    public IReadOnlyList<Link> Chain { get; } = chain;

    public async Task<ChatResponse> GetResponseAsync(
        IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var list = messages as IList<ChatMessage> ?? messages.ToList();
        var attempts = new List<ModelAttempt>();
        foreach (var link in Chain)
        {
            var clock = Stopwatch.StartNew();
            try
            {
                var response = await link.Client.GetResponseAsync(list, WithModel(options, link.Model), cancellationToken);
                attempts.Add(new ModelAttempt(link.Provider, link.Model, "ok", null, clock.ElapsedMilliseconds));
                ModelAttemptLog.Current?.Add(attempts);
                return response;
            }
            catch (Polly.CircuitBreaker.BrokenCircuitException)
            {
                attempts.Add(new ModelAttempt(link.Provider, link.Model, "circuit_open", null, 0));
            }
            catch (Exception e) when (ProviderFailures.IsProviderFailure(e, cancellationToken))
            {
                // The attempt keeps the sanitized reason; the provider's own words go to the trace only.
                Activity.Current?.AddException(e);
                attempts.Add(new ModelAttempt(link.Provider, link.Model, "failed", ProviderFailures.Describe(e), clock.ElapsedMilliseconds));
            }
        }
        throw Unavailable(attempts);
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(
        IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var list = messages as IList<ChatMessage> ?? messages.ToList();
        var attempts = new List<ModelAttempt>();
        foreach (var link in Chain)
        {
            IAsyncEnumerator<ChatResponseUpdate>? updates = null;
            ChatResponseUpdate? first = null;
            try
            {
                // Fall back only before the first update: after that the client has seen output.
                updates = link.Client.GetStreamingResponseAsync(list, WithModel(options, link.Model), cancellationToken).GetAsyncEnumerator(cancellationToken);
                if (await updates.MoveNextAsync()) first = updates.Current;
            }
            catch (Exception e) when (e is Polly.CircuitBreaker.BrokenCircuitException || ProviderFailures.IsProviderFailure(e, cancellationToken))
            {
                Activity.Current?.AddException(e);
                attempts.Add(new ModelAttempt(link.Provider, link.Model, e is Polly.CircuitBreaker.BrokenCircuitException ? "circuit_open" : "failed",
                    ProviderFailures.Describe(e), 0));
                if (updates is not null) await updates.DisposeAsync();
                continue;
            }
            await using (updates)
            {
                ModelAttemptLog.Current?.Add([.. attempts, new ModelAttempt(link.Provider, link.Model, "ok", null, 0)]);
                if (first is not null)
                {
                    first.ModelId ??= link.Model;
                    yield return first;
                }
                while (await updates.MoveNextAsync()) yield return updates.Current;
            }
            yield break;
        }
        throw Unavailable(attempts);
    }

    private AgentUnavailableException Unavailable(List<ModelAttempt> attempts)
    {
        ModelAttemptLog.Current?.Add(attempts);
        var open = Chain.Select(l => l.Client.Breaker.RetryAfter).Where(t => t > TimeSpan.Zero).ToList();
        return new AgentUnavailableException(agent, open.Count > 0 ? open.Min() : TimeSpan.FromSeconds(5), attempts);
    }

    private static ChatOptions WithModel(ChatOptions? options, string model)
    {
        var copy = options?.Clone() ?? new ChatOptions();
        copy.ModelId = model;
        return copy;
    }

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is null && serviceType.IsInstanceOfType(this) ? this : null;

    public void Dispose() { }
}

/// <summary>
/// The model attempts, tokens and cost of the agent run in this async flow (one entry per LLM call;
/// tool loops make several, and a fallback may answer some of them).
/// </summary>
public sealed class ModelAttemptLog
{
    private static readonly AsyncLocal<ModelAttemptLog?> Ambient = new();
    private readonly List<ModelAttempt> _attempts = [];
    private long _inputTokens;
    private long _outputTokens;
    private decimal _cost;

    public long InputTokens => Interlocked.Read(ref _inputTokens);
    public long OutputTokens => Interlocked.Read(ref _outputTokens);

    public decimal CostUsd
    {
        get { lock (_attempts) return _cost; }
    }

    /// <summary>Called by the metering middleware for every priced call.</summary>
    public void AddUsage(long input, long output, decimal cost)
    {
        Interlocked.Add(ref _inputTokens, input);
        Interlocked.Add(ref _outputTokens, output);
        lock (_attempts) _cost += cost;
    }

    public static ModelAttemptLog? Current => Ambient.Value;

    public IReadOnlyList<ModelAttempt> Attempts
    {
        get { lock (_attempts) return _attempts.ToList(); }
    }

    /// <summary>The model that gave the last answer.</summary>
    public ModelAttempt? LastSuccess
    {
        get { lock (_attempts) return _attempts.LastOrDefault(a => a.Outcome == "ok"); }
    }

    public void Add(IEnumerable<ModelAttempt> attempts)
    {
        lock (_attempts) _attempts.AddRange(attempts);
    }

    /// <summary>A fresh log for the calling async flow; the previous one returns when the scope ends.</summary>
    public static IDisposable Begin(out ModelAttemptLog log)
    {
        var previous = Ambient.Value;
        log = new ModelAttemptLog();
        Ambient.Value = log;
        return new Restore(previous);
    }

    private sealed class Restore(ModelAttemptLog? previous) : IDisposable
    {
        public void Dispose() => Ambient.Value = previous;
    }
}
