using Microsoft.Extensions.AI;
using AgentPlatform.Engine.Telemetry;

namespace AgentPlatform.Engine.Llm;

/// <summary>
/// Prices each response from its usage, records token and cost metrics, and adds both to the run's
/// <see cref="ModelAttemptLog"/> — the one place a call is priced.
/// </summary>
public sealed class MeteringChatClient(IChatClient inner, LlmOptions options, string model, decimal? inputPer1K = null, decimal? outputPer1K = null)
    : DelegatingChatClient(inner)
{
    public override async Task<ChatResponse> GetResponseAsync(
        IEnumerable<ChatMessage> messages, ChatOptions? chatOptions = null, CancellationToken cancellationToken = default)
    {
        var response = await base.GetResponseAsync(messages, chatOptions, cancellationToken);
        var input = response.Usage?.InputTokenCount ?? 0;
        var output = response.Usage?.OutputTokenCount ?? 0;
        var cost = options.CostOf(model, input, output, inputPer1K, outputPer1K);

        PlatformTelemetry.LlmTokens.Add(input, new("model", model), new("token_type", "prompt"));
        PlatformTelemetry.LlmTokens.Add(output, new("model", model), new("token_type", "completion"));
        PlatformTelemetry.CostUsd.Add((double)cost, new KeyValuePair<string, object?>("model", model));
        ModelAttemptLog.Current?.AddUsage(input, output, cost);
        return response;
    }
}

public static class MeteringChatClientExtensions
{
    public static ChatClientBuilder UseMetering(this ChatClientBuilder builder, LlmOptions options, string model,
        decimal? inputPer1K = null, decimal? outputPer1K = null) =>
        builder.Use(inner => new MeteringChatClient(inner, options, model, inputPer1K, outputPer1K));
}
