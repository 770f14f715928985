using AgentPlatform.Engine.Agents;
using AgentPlatform.Engine.Routing;
using AgentPlatform.Engine.Telemetry;
using AgentPlatform.Engine.Tools;
using Microsoft.Extensions.AI;

namespace AgentPlatform.Engine.Execution;

/// <summary>
/// Carries out a routing decision:
/// <list type="bullet">
/// <item>single — the chosen agent, through its model chain;</item>
/// <item>parallel — the participants run at once; the best acceptable answer wins, "best" meaning
/// the highest-ranked participant. Answers are taken in rank order: as soon as the best remaining
/// participant's answer is acceptable (it answered with text and stopped on its own) it wins and
/// the others are cancelled, so the run lasts as long as that participant, never the sum;</item>
/// <item>cascade — each participant refines the previous one's answer; the last good answer wins.</item>
/// </list>
/// Cost counts every call that got an answer back, winner or not, in a run that was cancelled too (as the usage
/// ledger does); a cancelled call counts nothing (the provider may still bill its prompt).
/// </summary>
public sealed class TaskExecutor(AgentRegistry registry, AgentInvoker invoker)
{
    public async Task<ExecutionResult> ExecuteAsync(RoutingDecision decision, RunInput input, ToolCaller caller,
        CancellationToken cancellationToken)
    {
        var agents = decision.Agents.Select(registry.Find).OfType<AgentDefinition>().ToList();
        if (agents.Count == 0) return new ExecutionResult(decision.Strategy, null, []);

        using var activity = PlatformTelemetry.ActivitySource.StartActivity("agent.execute");
        activity?.SetTag("agent.strategy", decision.Strategy);
        ExecutionResult result;
        try
        {
            result = decision.Strategy switch
            {
                Strategies.Parallel when agents.Count > 1 => await ParallelAsync(agents, input with { OnUpdate = null }, caller, cancellationToken),
                Strategies.Cascade when agents.Count > 1 => await CascadeAsync(agents, input with { OnUpdate = null }, caller, cancellationToken),
                _ => await SingleAsync(agents[0], input, caller, cancellationToken),
            };
        }
        catch (OperationCanceledException e) when (cancellationToken.IsCancellationRequested && input.Preparation.Count > 0)
        {
            throw Spent(e, input.Preparation, cancellationToken);
        }
        // Several agents answer in turn or at once: only the winner's answer is worth streaming, and it is known at the end.
        if (result.Strategy != Strategies.Single && input.OnUpdate is { } stream && result.Winner?.Text is { Length: > 0 } text)
            await stream(new ChatResponseUpdate(ChatRole.Assistant, text) { ModelId = result.Winner.Model }, cancellationToken);
        if (result.Winner?.Response is { } response) input.OnResponse?.Invoke(response);
        return input.Preparation.Count == 0 ? result : result with { Runs = [.. input.Preparation, .. result.Runs] };
    }

    private async Task<ExecutionResult> SingleAsync(AgentDefinition agent, RunInput input, ToolCaller caller,
        CancellationToken cancellationToken)
    {
        var run = await invoker.RunAsync(agent, input, caller, cancellationToken);
        return new ExecutionResult(Strategies.Single, run.Succeeded ? run : null, [run]);
    }

    private async Task<ExecutionResult> ParallelAsync(List<AgentDefinition> agents, RunInput input, ToolCaller caller,
        CancellationToken cancellationToken)
    {
        using var losers = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var runs = agents.Select(agent => RunCancellableAsync(agent, input, caller, losers.Token)).ToList();
        AgentRun? winner = null;
        foreach (var run in runs)
        {
            var result = await run;
            if (!result.Acceptable) continue;
            winner = result;
            await losers.CancelAsync();
            break;
        }
        var all = await Task.WhenAll(runs);
        if (cancellationToken.IsCancellationRequested) throw Spent(new OperationCanceledException(cancellationToken), all, cancellationToken);
        return new ExecutionResult(Strategies.Parallel, winner,
            all.Select(r => r == winner || !r.Succeeded ? r : r with { Outcome = "not_chosen" }).ToList());
    }

    private async Task<AgentRun> RunCancellableAsync(AgentDefinition agent, RunInput input, ToolCaller caller,
        CancellationToken cancellationToken)
    {
        try
        {
            return await invoker.RunAsync(agent, input, caller, cancellationToken);
        }
        catch (OperationCanceledException e)
        {
            // A loser cut short after some of its calls were answered (a tool loop) was billed for those.
            var spent = e as RunCancelledException;
            return new AgentRun(agent.Name, "cancelled", null, null, null, null, spent?.InputTokens ?? 0, spent?.OutputTokens ?? 0,
                spent?.CostUsd ?? 0m, 0, "Another agent's answer won.", []);
        }
    }

    private async Task<ExecutionResult> CascadeAsync(List<AgentDefinition> agents, RunInput input, ToolCaller caller,
        CancellationToken cancellationToken)
    {
        var runs = new List<AgentRun>();
        AgentRun? last = null;
        foreach (var agent in agents)
        {
            var step = input;
            if (last is not null)
            {
                var conversation = input.Conversation ?? [.. input.History, new ChatMessage(ChatRole.User, input.Task)];
                step = input with
                {
                    Conversation =
                    [
                        .. conversation,
                        new ChatMessage(ChatRole.Assistant, last.Text),
                        new ChatMessage(ChatRole.User,
                            $"The answer above is a draft by the '{last.Agent}' agent. Refine it from your field's point of view: " +
                            "correct mistakes, fill gaps, and reply with the complete improved answer."),
                    ],
                };
            }
            AgentRun run;
            try
            {
                run = await invoker.RunAsync(agent, step, caller, cancellationToken);
            }
            catch (OperationCanceledException e) when (cancellationToken.IsCancellationRequested && runs.Count > 0)
            {
                throw Spent(e, runs, cancellationToken);
            }
            runs.Add(run);
            if (run.Succeeded) last = run;
        }
        return new ExecutionResult(Strategies.Cascade, last, runs);
    }

    /// <summary>
    /// A cancel that stopped the execution: what the runs finished before it (a cascade's earlier steps, a summary, the
    /// parallel participants) and the run it cut short had spent, for the cancelled task to record.
    /// </summary>
    private static OperationCanceledException Spent(OperationCanceledException cancel, IEnumerable<AgentRun> finished, CancellationToken token)
    {
        var cut = cancel as RunCancelledException;
        var runs = finished.ToList();
        var (input, output, cost) = (runs.Sum(r => r.PromptTokens) + (cut?.InputTokens ?? 0), runs.Sum(r => r.CompletionTokens) + (cut?.OutputTokens ?? 0),
            runs.Sum(r => r.CostUsd) + (cut?.CostUsd ?? 0m));
        return input + output == 0 && cost == 0 ? cancel : new RunCancelledException(input, output, cost, token);
    }
}
