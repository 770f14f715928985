using System.Security.Cryptography;
using System.Text.Json;
using AgentPlatform.Engine.Agents;
using AgentPlatform.Engine.Execution;
using Microsoft.Extensions.AI;

namespace AgentPlatform.Engine.Caching;

/// <summary>One agent of a run as the cache sees it: its model chain ("provider/model", in the order tried) and the options its run sends.</summary>
public sealed record CacheParticipant(AgentDefinition Agent, IReadOnlyList<string> Chain, ChatOptions Options);

/// <summary>
/// What identifies a run's answer, as hashes of a canonical form (SHA-256, hex):
/// <list type="bullet">
/// <item><see cref="Exact"/> — the strategy, and for each participating agent its name, model chain (provider and model, in
/// order), the options that change the answer (temperature, top_p, token limit, seed, stop, response format, reasoning,
/// tool mode, the tools offered with their schemas) and every message it would get: its system prompt, the background
/// (summary, recalled memories), the client's context, the history or the client's conversation, and the new message.
/// Texts are compared after trimming and with \n line ends; nothing else is normalised, because a change of case or
/// punctuation inside a prompt can change the answer.</item>
/// <item><see cref="Context"/> — the same without the last message: the semantic cache only serves a prompt whose
/// everything-but-the-new-message matches exactly, so a conversation with another history, another system prompt or
/// other options never gets a semantic hit.</item>
/// <item><see cref="SemanticText"/> — the new message, what the semantic cache embeds: the last message when it is the
/// user's and only text, else null (a conversation ending in a tool result is not a prompt to paraphrase).</item>
/// </list>
/// </summary>
public sealed record PromptFingerprint(string Exact, string Context, string? SemanticText)
{
    private const int Version = 1;

    public static PromptFingerprint Of(string strategy, IReadOnlyList<CacheParticipant> participants, RunInput input)
    {
        ArgumentOutOfRangeException.ThrowIfZero(participants.Count);
        List<ChatMessage>? last = null;
        using var context = new MemoryStream();
        using (var json = new Utf8JsonWriter(context))
        {
            json.WriteStartObject();
            json.WriteNumber("v", Version);
            json.WriteString("strategy", strategy);
            json.WriteStartArray("participants");
            foreach (var participant in participants)
            {
                json.WriteStartObject();
                json.WriteString("agent", participant.Agent.Name);
                json.WriteStartArray("chain");
                foreach (var link in participant.Chain) json.WriteStringValue(link);
                json.WriteEndArray();
                json.WritePropertyName("options");
                WriteOptions(json, participant.Options);
                var messages = input.MessagesFor(participant.Agent.SystemPrompt);
                last ??= messages;
                json.WriteStartArray("messages");
                foreach (var message in messages.Take(messages.Count - 1)) WriteMessage(json, message);
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteEndObject();
        }

        var newMessage = last![^1];
        using var lastJson = new MemoryStream();
        using (var json = new Utf8JsonWriter(lastJson)) WriteMessage(json, newMessage);

        var contextBytes = context.ToArray();
        var semantic = newMessage.Role == ChatRole.User && newMessage.Contents.Count > 0 && newMessage.Contents.All(c => c is TextContent)
            ? Normalize(newMessage.Text)
            : null;
        return new PromptFingerprint(Hash([.. contextBytes, (byte)'\n', .. lastJson.ToArray()]), Hash(contextBytes),
            string.IsNullOrEmpty(semantic) ? null : semantic);
    }

    private static string Hash(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    private static string Normalize(string text) => text.ReplaceLineEndings("\n").Trim();

    private static void WriteMessage(Utf8JsonWriter json, ChatMessage message)
    {
        json.WriteStartObject();
        json.WriteString("role", message.Role.Value);
        if (message.AuthorName is not null) json.WriteString("name", message.AuthorName);
        json.WriteStartArray("contents");
        foreach (var content in message.Contents)
        {
            if (content is TextContent text)
            {
                json.WriteStartObject();
                json.WriteString("text", Normalize(text.Text));
                json.WriteEndObject();
            }
            else
            {
                // Function calls and results, images, files: their own JSON form, type included.
                JsonSerializer.Serialize(json, content, AIJsonUtilities.DefaultOptions);
            }
        }
        json.WriteEndArray();
        json.WriteEndObject();
    }

    private static void WriteOptions(Utf8JsonWriter json, ChatOptions options)
    {
        json.WriteStartObject();
        Number("temperature", options.Temperature);
        Number("top_p", options.TopP);
        Number("top_k", options.TopK);
        Number("frequency_penalty", options.FrequencyPenalty);
        Number("presence_penalty", options.PresencePenalty);
        if (options.MaxOutputTokens is { } max) json.WriteNumber("max_output_tokens", max);
        if (options.Seed is { } seed) json.WriteNumber("seed", seed);
        if (options.StopSequences is { Count: > 0 } stop)
        {
            json.WriteStartArray("stop");
            foreach (var sequence in stop) json.WriteStringValue(sequence);
            json.WriteEndArray();
        }
        switch (options.ResponseFormat)
        {
            case ChatResponseFormatJson format:
                json.WriteStartObject("response_format");
                json.WriteString("type", "json");
                if (format.Schema is { } schema)
                {
                    json.WritePropertyName("schema");
                    schema.WriteTo(json);
                }
                if (format.SchemaName is not null) json.WriteString("name", format.SchemaName);
                if (format.SchemaDescription is not null) json.WriteString("description", format.SchemaDescription);
                json.WriteEndObject();
                break;
            case ChatResponseFormatText:
                json.WriteString("response_format", "text");
                break;
        }
        if (options.Reasoning is { } reasoning)
        {
            json.WritePropertyName("reasoning");
            JsonSerializer.Serialize(json, reasoning, AIJsonUtilities.DefaultOptions);
        }
        if (options.AllowMultipleToolCalls is { } parallel) json.WriteBoolean("parallel_tool_calls", parallel);
        json.WriteString("tool_mode", options.ToolMode switch
        {
            null => null,
            NoneChatToolMode => "none",
            AutoChatToolMode => "auto",
            RequiredChatToolMode required => "required:" + required.RequiredFunctionName,
            var other => other.GetType().Name,
        });
        json.WriteStartArray("tools");
        foreach (var tool in (options.Tools ?? []).OrderBy(t => t.Name, StringComparer.Ordinal))
        {
            json.WriteStartObject();
            json.WriteString("name", tool.Name);
            json.WriteString("description", tool.Description);
            if (tool is AIFunctionDeclaration function)
            {
                json.WritePropertyName("schema");
                function.JsonSchema.WriteTo(json);
            }
            json.WriteEndObject();
        }
        json.WriteEndArray();
        if (options.AdditionalProperties is { Count: > 0 } additional)
        {
            json.WriteStartObject("additional");
            foreach (var (name, value) in additional.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                json.WritePropertyName(name);
                JsonSerializer.Serialize(json, value, AIJsonUtilities.DefaultOptions);
            }
            json.WriteEndObject();
        }
        json.WriteEndObject();

        void Number(string name, float? value)
        {
            // Written as text: float → JSON number round trips would make 0.2f and 0.2 differ between callers.
            if (value is { } number) json.WriteString(name, number.ToString("R", System.Globalization.CultureInfo.InvariantCulture));
        }
    }
}
