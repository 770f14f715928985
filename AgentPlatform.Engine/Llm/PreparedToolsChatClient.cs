using System.Runtime.CompilerServices;
using AgentPlatform.Engine.Tools;
using Microsoft.Extensions.AI;
using OpenAI.Chat;

namespace AgentPlatform.Engine.Llm;

/// <summary>
/// Hands the OpenAI client its function tools already converted. Microsoft.Extensions.AI's OpenAI adapter turns every
/// function into an OpenAI <see cref="ChatTool"/> on every call, parsing and re-serializing its JSON schema: about 3 % of the
/// Api's CPU at gateway rates for an agent with a few tools (profiled). Here each tool definition is converted once, by the
/// adapter's own public conversion (<see cref="MicrosoftExtensionsAIChatExtensions.AsOpenAIChatTool"/>), and the adapter
/// takes the converted tools through <see cref="ChatOptions.RawRepresentationFactory"/>, which it documents for exactly
/// this (options it fills in rather than builds). Sits directly on the provider's client: everything above it, the function
/// invocation loop included, still sees the tools as functions. Options it cannot reproduce exactly (other tool kinds,
/// additional properties such as strict mode, a factory of the caller's) go through untouched.
/// </summary>
internal sealed class PreparedToolsChatClient(IChatClient inner) : DelegatingChatClient(inner)
{
    // Keyed on the tool definition a request's wrapper (GuardedTool, one per request) delegates to: it lives as long as the
    // catalog holds the tool, and a tool replaced (an MCP server's new list) is a new key.
    private static readonly ConditionalWeakTable<AIFunctionDeclaration, ChatTool> Converted = new();

    public override Task<ChatResponse> GetResponseAsync(IEnumerable<Microsoft.Extensions.AI.ChatMessage> messages, ChatOptions? options = null,
        CancellationToken cancellationToken = default) =>
        base.GetResponseAsync(messages, Prepare(options), cancellationToken);

    public override IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<Microsoft.Extensions.AI.ChatMessage> messages,
        ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        base.GetStreamingResponseAsync(messages, Prepare(options), cancellationToken);

    internal static ChatOptions? Prepare(ChatOptions? options)
    {
        if (options?.Tools is not { Count: > 0 } tools || options.RawRepresentationFactory is not null || options.AdditionalProperties is { Count: > 0 })
            return options;
        var converted = new ChatTool[tools.Count];
        for (var i = 0; i < tools.Count; i++)
        {
            if (tools[i] is not AIFunctionDeclaration function) return options;
            converted[i] = Converted.GetValue(function is GuardedTool guarded ? guarded.Definition : function, static f => f.AsOpenAIChatTool());
        }
        var (mode, allowMultiple) = (options.ToolMode, options.AllowMultipleToolCalls);
        var prepared = options.Clone();
        prepared.Tools = null;
        prepared.ToolMode = null;
        prepared.RawRepresentationFactory = _ =>
        {
            // What the adapter sets when it converts the tools itself (OpenAIChatClient.ToOpenAIOptions).
            var request = new ChatCompletionOptions
            {
                AllowParallelToolCalls = allowMultiple,
                ToolChoice = mode switch
                {
                    NoneChatToolMode => ChatToolChoice.CreateNoneChoice(),
                    RequiredChatToolMode { RequiredFunctionName: { } name } => ChatToolChoice.CreateFunctionChoice(name),
                    RequiredChatToolMode => ChatToolChoice.CreateRequiredChoice(),
                    _ => ChatToolChoice.CreateAutoChoice(),
                },
            };
            foreach (var tool in converted) request.Tools.Add(tool);
            return request;
        };
        return prepared;
    }
}
