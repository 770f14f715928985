using System.Diagnostics;
using AgentPlatform.Engine.Agents;
using AgentPlatform.Engine.Llm;
using AgentPlatform.Engine.Routing;
using AgentPlatform.Engine.Telemetry;
using AgentPlatform.Engine.Tools;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;

namespace AgentPlatform.Engine.Execution;

/// <summary>
/// Runs one agent once: its pipeline (tools, model chain, breakers) under the agent's time limit,
/// with its outcome fed to the router's track record.
/// </summary>
public sealed class AgentInvoker(AgentClients clients, AgentStats stats, IToolCatalog tools, ILogger<AgentInvoker> logger)
{
    public async Task<AgentRun> RunAsync(AgentDefinition agent, RunInput input, ToolCaller caller, CancellationToken cancellationToken)
    {
        using var activity = PlatformTelemetry.ActivitySource.StartActivity("agent.run");
        activity?.SetTag("agent.name", agent.Name);
        using var attemptsScope = ModelAttemptLog.Begin(out var attempts);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(agent.TimeoutSeconds));
        var options = OptionsFor(agent, input, caller);
        var messages = input.MessagesFor(agent.SystemPrompt);

        var clock = Stopwatch.StartNew();
        try
        {
            var degraded = input.PreferCheaperModels && clients.HasCheaperFirst(agent);
            activity?.SetTag("agent.degraded", degraded);
            var client = clients.For(agent, degraded);
            var response = input.OnUpdate is { } onUpdate
                ? await StreamAsync(client, messages, options, onUpdate, timeout.Token)
                : await client.GetResponseAsync(messages, options, timeout.Token);
            var answered = attempts.LastSuccess;
            var model = answered?.Model ?? response.ModelId ?? "";
            stats.RecordOutcome(agent.Name, true, clock.Elapsed);
            activity?.SetTag("gen_ai.response.model", model);
            // Tokens and cost of every call of the run (tool loops make several), as metering priced them.
            return new AgentRun(agent.Name, "ok", answered?.Provider, model, response.Text, response.FinishReason?.Value,
                attempts.InputTokens, attempts.OutputTokens, attempts.CostUsd, clock.ElapsedMilliseconds, null, attempts.Attempts)
            {
                Response = response,
                Degraded = degraded,
            };
        }
        catch (AgentUnavailableException e)
        {
            // Unavailable: the breakers refused every model (retry later). Failed: the models were tried and failed.
            var allOpen = e.Attempts.All(a => a.Outcome == "circuit_open");
            return Failed(agent, allOpen ? "unavailable" : "failed", e.Message, e, clock, attempts, activity, allOpen ? e.RetryAfter : null);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested && attempts.InputTokens + attempts.OutputTokens > 0)
        {
            throw new RunCancelledException(attempts.InputTokens, attempts.OutputTokens, attempts.CostUsd, cancellationToken);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return Failed(agent, "timeout", $"Agent '{agent.Name}' did not finish within its time limit of {agent.TimeoutSeconds} s.",
                null, clock, attempts, activity);
        }
        catch (Exception e) when (ProviderFailures.IsProviderFailure(e, cancellationToken))
        {
            return Failed(agent, "failed", ProviderFailures.Describe(e), e, clock, attempts, activity);
        }
    }

    /// <summary>The options a run of <paramref name="agent"/> sends: the agent's defaults, its tools the caller may use, then the client's changes.</summary>
    public ChatOptions OptionsFor(AgentDefinition agent, RunInput input, ToolCaller caller)
    {
        var options = new ChatOptions
        {
            Temperature = agent.Temperature,
            MaxOutputTokens = agent.MaxOutputTokens,
            Tools = agent.Tools.Length > 0 ? tools.ToolsFor(caller, agent) : null,
        };
        input.ConfigureOptions?.Invoke(options);
        if (options.Tools is { Count: 0 }) options.Tools = null;
        return options;
    }

    /// <summary>Hands each update on as it arrives and returns the whole response, as the non-streaming call would.</summary>
    private static async Task<ChatResponse> StreamAsync(IChatClient client, List<ChatMessage> messages, ChatOptions options,
        Func<ChatResponseUpdate, CancellationToken, ValueTask> onUpdate, CancellationToken cancellationToken)
    {
        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in client.GetStreamingResponseAsync(messages, options, cancellationToken))
        {
            updates.Add(update);
            await onUpdate(update, cancellationToken);
        }
        return updates.ToChatResponse();
    }

    /// <param name="error">The sanitized reason the client sees (<see cref="ProviderFailures.Describe"/>).</param>
    /// <param name="cause">The full failure, for the log and the trace only.</param>
    private AgentRun Failed(AgentDefinition agent, string outcome, string error, Exception? cause, Stopwatch clock,
        ModelAttemptLog attempts, Activity? activity, TimeSpan? retryAfter = null)
    {
        logger.LogWarning(cause, "Agent {Agent} {Outcome}: {Error}", agent.Name, outcome, error);
        activity?.SetStatus(ActivityStatusCode.Error, error);
        if (cause is not null) activity?.AddException(cause);
        stats.RecordOutcome(agent.Name, false, null);
        // A run can fail after some calls succeeded (a tool loop): what they cost was spent all the same.
        return new AgentRun(agent.Name, outcome, null, null, null, null, attempts.InputTokens, attempts.OutputTokens, attempts.CostUsd,
            clock.ElapsedMilliseconds, error, attempts.Attempts, retryAfter);
    }
}
