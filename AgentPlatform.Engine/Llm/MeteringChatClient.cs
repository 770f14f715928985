using Microsoft.Extensions.AI;
using AgentPlatform.Engine.Billing;
using AgentPlatform.Engine.Telemetry;

namespace AgentPlatform.Engine.Llm;

/// <summary>
/// Prices each response from its usage, records token and cost metrics, adds both to the run's
/// <see cref="ModelAttemptLog"/> and writes one entry to the <see cref="UsageLedger"/> (for the key, task and session of
/// the <see cref="UsageScope"/>) — the one place a call is priced.
/// </summary>
/// <param name="agent">The agent whose pipeline this is, for the ledger.</param>
public sealed class MeteringChatClient(IChatClient inner, LlmOptions options, string model, decimal? inputPer1K = null, decimal? outputPer1K = null,
    UsageLedger? ledger = null, string? agent = null)
    : DelegatingChatClient(inner)
{
    public override async Task<ChatResponse> GetResponseAsync(
        IEnumerable<ChatMessage> messages, ChatOptions? chatOptions = null, CancellationToken cancellationToken = default)
    {
        var response = await base.GetResponseAsync(messages, chatOptions, cancellationToken);
        Record(response.Usage);
        return response;
    }

    /// <summary>A stream is priced from the usage its last updates carry (OpenAI sends it when the stream ends).</summary>
    public override async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(
        IEnumerable<ChatMessage> messages, ChatOptions? chatOptions = null,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var usage = new UsageDetails();
        var reported = false;
        await foreach (var update in base.GetStreamingResponseAsync(messages, chatOptions, cancellationToken))
        {
            foreach (var content in update.Contents.OfType<UsageContent>())
            {
                usage.Add(content.Details);
                reported = true;
            }
            yield return update;
        }
        if (reported) Record(usage);
    }

    private void Record(UsageDetails? usage)
    {
        var input = usage?.InputTokenCount ?? 0;
        var output = usage?.OutputTokenCount ?? 0;
        var cost = options.CostOf(model, input, output, inputPer1K, outputPer1K);

        PlatformTelemetry.LlmTokens.Add(input, new("model", model), new("token_type", "prompt"));
        PlatformTelemetry.LlmTokens.Add(output, new("model", model), new("token_type", "completion"));
        PlatformTelemetry.CostUsd.Add((double)cost, new KeyValuePair<string, object?>("model", model));
        ModelAttemptLog.Current?.AddUsage(input, output, cost);
        ledger?.Record(UsageScope.Current?.Kind ?? UsageKinds.Chat, agent, model, input, output, cost);
    }
}

public static class MeteringChatClientExtensions
{
    /// <param name="ledger">Where each priced call is recorded; null records metrics only.</param>
    /// <param name="agent">The agent the pipeline belongs to, named in the ledger.</param>
    public static ChatClientBuilder UseMetering(this ChatClientBuilder builder, LlmOptions options, string model,
        decimal? inputPer1K = null, decimal? outputPer1K = null, UsageLedger? ledger = null, string? agent = null) =>
        builder.Use(inner => new MeteringChatClient(inner, options, model, inputPer1K, outputPer1K, ledger, agent));
}
