using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;

namespace AgentPlatform.Engine.Llm;

/// <summary>
/// The model that answers when no provider is configured: deterministic, free, and clearly marked
/// as offline in every answer, so every flow of the platform works without a key.
/// </summary>
public sealed class OfflineChatClient : IChatClient
{
    public const string Marker = "[offline model]";

    public Task<ChatResponse> GetResponseAsync(
        IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var list = messages.ToList();
        var question = list.LastOrDefault(m => m.Role == ChatRole.User)?.Text ?? "";
        var text = $"{Marker} No LLM provider is configured, so this deterministic offline answer stands in. " +
                   $"You asked: \"{Shorten(question, 200)}\"";
        var response = new ChatResponse(new ChatMessage(ChatRole.Assistant, text))
        {
            ModelId = LlmOptions.OfflineModel,
            FinishReason = ChatFinishReason.Stop,
            Usage = new UsageDetails
            {
                InputTokenCount = EstimateTokens(list.Sum(m => m.Text.Length)),
                OutputTokenCount = EstimateTokens(text.Length),
            },
        };
        response.Usage.TotalTokenCount = response.Usage.InputTokenCount + response.Usage.OutputTokenCount;
        return Task.FromResult(response);
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(
        IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var response = await GetResponseAsync(messages, options, cancellationToken);
        foreach (var update in response.ToChatResponseUpdates())
        {
            yield return update;
        }
    }

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is null && serviceType.IsInstanceOfType(this) ? this : null;

    public void Dispose() { }

    // About four characters a token, the usual rule of thumb for English text.
    private static long EstimateTokens(int characters) => Math.Max(1, (characters + 3) / 4);

    private static string Shorten(string text, int max) => text.Length <= max ? text : text[..max] + "…";
}
