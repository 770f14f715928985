using Microsoft.Extensions.AI;
using AgentPlatform.Engine.Telemetry;

namespace AgentPlatform.Engine.Llm;

/// <summary>
/// Prices each response from its usage and records token and cost metrics. The cost travels on
/// <see cref="ChatResponse.AdditionalProperties"/> under <see cref="CostKey"/>.
/// </summary>
public sealed class MeteringChatClient(IChatClient inner, LlmOptions options, string model) : DelegatingChatClient(inner)
{
    public const string CostKey = "cost_usd";

    public override async Task<ChatResponse> GetResponseAsync(
        IEnumerable<ChatMessage> messages, ChatOptions? chatOptions = null, CancellationToken cancellationToken = default)
    {
        var response = await base.GetResponseAsync(messages, chatOptions, cancellationToken);
        var input = response.Usage?.InputTokenCount ?? 0;
        var output = response.Usage?.OutputTokenCount ?? 0;
        var cost = options.CostOf(model, input, output);

        PlatformTelemetry.LlmTokens.Add(input, new("model", model), new("token_type", "prompt"));
        PlatformTelemetry.LlmTokens.Add(output, new("model", model), new("token_type", "completion"));
        PlatformTelemetry.CostUsd.Add((double)cost, new KeyValuePair<string, object?>("model", model));

        (response.AdditionalProperties ??= [])[CostKey] = cost;
        return response;
    }
}

public static class MeteringChatClientExtensions
{
    public static ChatClientBuilder UseMetering(this ChatClientBuilder builder, LlmOptions options, string model) =>
        builder.Use(inner => new MeteringChatClient(inner, options, model));

    public static decimal CostUsd(this ChatResponse response) =>
        response.AdditionalProperties?.TryGetValue(MeteringChatClient.CostKey, out var cost) == true && cost is decimal d ? d : 0m;
}
