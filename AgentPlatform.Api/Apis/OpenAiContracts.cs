using System.ComponentModel.DataAnnotations;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using AgentPlatform.Api.Admission;
using Microsoft.Extensions.AI;

namespace AgentPlatform.Api.Apis;

/// <summary>
/// OpenAI's chat completion request (https://platform.openai.com/docs/api-reference/chat/create) as far as the platform
/// serves it. Parameters that would change the answer and cannot be honoured are refused by name (400); parameters that
/// change nothing a client can see (store, metadata, service_tier…) are accepted and ignored.
/// </summary>
public sealed partial class ChatCompletionRequest : IPromptRequest, IValidatableObject
{
    public const int MaxMessages = 1_000;
    public const int MaxTools = 128;

    /// <summary>An agent name, or "auto" to let the router choose. Set from the path on /agents/{name}/chat/completions.</summary>
    public string? Model { get; set; }

    public List<ChatCompletionMessage>? Messages { get; init; }

    public bool Stream { get; init; }

    public ChatCompletionStreamOptions? StreamOptions { get; init; }

    public int? N { get; init; }

    public double? Temperature { get; init; }

    public double? TopP { get; init; }

    public double? FrequencyPenalty { get; init; }

    public double? PresencePenalty { get; init; }

    /// <summary>The older name of <see cref="MaxCompletionTokens"/>; either may be sent.</summary>
    public int? MaxTokens { get; init; }

    public int? MaxCompletionTokens { get; init; }

    public long? Seed { get; init; }

    /// <summary>A string or up to four strings.</summary>
    public JsonElement? Stop { get; init; }

    public ChatCompletionResponseFormat? ResponseFormat { get; init; }

    public List<ChatCompletionTool>? Tools { get; init; }

    /// <summary>"none", "auto", "required", or {"type":"function","function":{"name":…}}.</summary>
    public JsonElement? ToolChoice { get; init; }

    public bool? ParallelToolCalls { get; init; }

    /// <summary>none, minimal, low, medium, high or xhigh, for reasoning models.</summary>
    public string? ReasoningEffort { get; init; }

    /// <summary>The client's end-user id: recorded with the task (log scope and trace), not sent to the provider.</summary>
    public string? User { get; init; }

    /// <summary>The platform's extension: false asks for a fresh answer, neither served from nor stored in the response cache.</summary>
    public bool? Cache { get; init; }

    /// <summary>Everything else the client sent; checked against <see cref="Refusals"/>.</summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Other { get; init; }

    /// <summary>Parameters the platform cannot honour, and when sending one changes the answer (so it is refused).</summary>
    private static readonly (string Name, Func<JsonElement, bool> ChangesAnswer, string Why)[] Refusals =
    [
        ("logprobs", v => v.ValueKind == JsonValueKind.True, "Log probabilities are not returned by this platform; omit logprobs or send false."),
        ("top_logprobs", v => v.ValueKind != JsonValueKind.Null, "Log probabilities are not returned by this platform; omit top_logprobs."),
        ("logit_bias", v => v.ValueKind == JsonValueKind.Object && v.EnumerateObject().Any(), "logit_bias is not supported; omit it."),
        ("audio", v => v.ValueKind != JsonValueKind.Null, "Audio output is not supported; omit audio."),
        ("modalities", v => v.ValueKind == JsonValueKind.Array && v.EnumerateArray().Any(m => m.ValueKind != JsonValueKind.String || m.GetString() != "text"),
            "Only the text modality is supported."),
        ("web_search_options", v => v.ValueKind != JsonValueKind.Null, "Web search is not supported; give the agent a tool instead."),
        ("functions", v => v.ValueKind != JsonValueKind.Null, "The deprecated functions parameter is not supported; send tools."),
        ("function_call", v => v.ValueKind != JsonValueKind.Null, "The deprecated function_call parameter is not supported; send tool_choice."),
        ("prompt", v => v.ValueKind != JsonValueKind.Null, "Stored prompts are not supported; send the messages."),
    ];

    /// <summary>The token limit the client asked for, under either name.</summary>
    [JsonIgnore]
    public int? OutputTokenLimit => MaxCompletionTokens ?? MaxTokens;

    [JsonIgnore]
    public bool IncludeUsage => StreamOptions?.IncludeUsage == true;

    /// <summary>The names of the functions the client declared: calls to these go back to it.</summary>
    [JsonIgnore]
    public IReadOnlySet<string> ClientToolNames =>
        (Tools ?? []).Select(t => t.Function?.Name).OfType<string>().ToHashSet(StringComparer.Ordinal);

    /// <summary>The text the task is stored and routed by: the last user message (else the last message with text).</summary>
    [JsonIgnore]
    public string TaskText
    {
        get
        {
            var messages = Messages ?? [];
            var text = messages.LastOrDefault(m => m.Role == "user" && !string.IsNullOrWhiteSpace(m.Text()))?.Text()
                       ?? messages.LastOrDefault(m => !string.IsNullOrWhiteSpace(m.Text()))?.Text();
            return string.IsNullOrWhiteSpace(text) ? "(a conversation without text)" : text;
        }
    }

    public IEnumerable<(string Field, string? Text)> PromptFields()
    {
        // What the client's users and tools said; the client's own system messages are its instructions, not a prompt to screen.
        foreach (var (message, i) in (Messages ?? []).Select((m, i) => (m, i)))
        {
            if (message.Role is "user" or "tool") yield return ($"messages[{i}].content", message.Text());
        }
    }

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        // model is checked by the handler: /agents/{name}/chat/completions takes it from the path.
        if (Messages is not { Count: > 0 })
            yield return Error("messages", "messages must contain at least one message.");
        else if (Messages.Count > MaxMessages)
            yield return Error("messages", $"messages may contain at most {MaxMessages} messages.");
        else
        {
            foreach (var error in Messages.SelectMany((m, i) => m.Validate($"messages[{i}]"))) yield return error;
        }

        if (N is { } n && n != 1)
            yield return Error("n", "Only n = 1 is supported: one choice per request.");
        if (Temperature is < 0 or > 2)
            yield return Error("temperature", "temperature must be between 0 and 2.");
        if (TopP is < 0 or > 1)
            yield return Error("top_p", "top_p must be between 0 and 1.");
        if (FrequencyPenalty is < -2 or > 2)
            yield return Error("frequency_penalty", "frequency_penalty must be between -2 and 2.");
        if (PresencePenalty is < -2 or > 2)
            yield return Error("presence_penalty", "presence_penalty must be between -2 and 2.");
        if (MaxTokens is < 1)
            yield return Error("max_tokens", "max_tokens must be at least 1.");
        if (MaxCompletionTokens is < 1)
            yield return Error("max_completion_tokens", "max_completion_tokens must be at least 1.");
        if (StopSequences(out var stopError) is null && stopError is not null)
            yield return Error("stop", stopError);
        if (ResponseFormat?.Validate() is { } formatError)
            yield return Error(formatError.Field, formatError.Message);
        if (ReasoningEffort is not null && Effort(ReasoningEffort) is null)
            yield return Error("reasoning_effort", "reasoning_effort is none, minimal, low, medium, high or xhigh.");
        if (Tools is { Count: > MaxTools })
            yield return Error("tools", $"At most {MaxTools} tools may be declared.");
        foreach (var error in (Tools ?? []).SelectMany((t, i) => t.Validate($"tools[{i}]"))) yield return error;
        if (Tools is not null && Tools.Select(t => t.Function?.Name).GroupBy(name => name).FirstOrDefault(g => g.Key is not null && g.Count() > 1) is { } twice)
            yield return Error("tools", $"The function '{twice.Key}' is declared twice.");
        if (ToolChoiceError() is { } toolChoiceError)
            yield return Error("tool_choice", toolChoiceError);
        if (User is { Length: > 256 })
            yield return Error("user", "user must be at most 256 characters.");
        foreach (var (name, changesAnswer, why) in Refusals)
        {
            if (Other?.TryGetValue(name, out var value) == true && changesAnswer(value)) yield return Error(name, why);
        }
    }

    internal static ValidationResult Error(string field, string message) => new(message, [field]);

    /// <summary>The stop sequences, or null with <paramref name="error"/> set when <see cref="Stop"/> is malformed.</summary>
    public IList<string>? StopSequences(out string? error)
    {
        error = null;
        switch (Stop)
        {
            case null or { ValueKind: JsonValueKind.Null }:
                return [];
            case { ValueKind: JsonValueKind.String } one when one.GetString() is { Length: > 0 } text:
                return [text];
            case { ValueKind: JsonValueKind.Array } many when many.GetArrayLength() <= 4
                                                          && many.EnumerateArray().All(s => s.ValueKind == JsonValueKind.String && s.GetString() is { Length: > 0 }):
                return many.EnumerateArray().Select(s => s.GetString()!).ToList();
            default:
                error = "stop is a non-empty string or an array of up to 4 non-empty strings.";
                return null;
        }
    }

    private string? ToolChoiceError() => ToolChoice switch
    {
        null or { ValueKind: JsonValueKind.Null } => null,
        { ValueKind: JsonValueKind.String } mode when mode.GetString() is "none" or "auto" => null,
        { ValueKind: JsonValueKind.String } mode when mode.GetString() is "required" =>
            Tools is { Count: > 0 } ? null : "tool_choice 'required' needs at least one tool in tools.",
        { ValueKind: JsonValueKind.Object } choice when RequiredFunction(choice) is { } name =>
            ClientToolNames.Contains(name) ? null : $"tool_choice names the function '{name}', which is not declared in tools.",
        _ => "tool_choice is 'none', 'auto', 'required' or {\"type\":\"function\",\"function\":{\"name\":\"…\"}}.",
    };

    private static string? RequiredFunction(JsonElement choice) =>
        choice.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() == "function"
        && choice.TryGetProperty("function", out var function) && function.ValueKind == JsonValueKind.Object
        && function.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String
            ? name.GetString()
            : null;

    private static ReasoningEffort? Effort(string effort) => effort switch
    {
        "none" => Microsoft.Extensions.AI.ReasoningEffort.None,
        "minimal" or "low" => Microsoft.Extensions.AI.ReasoningEffort.Low,
        "medium" => Microsoft.Extensions.AI.ReasoningEffort.Medium,
        "high" => Microsoft.Extensions.AI.ReasoningEffort.High,
        "xhigh" => Microsoft.Extensions.AI.ReasoningEffort.ExtraHigh,
        _ => null,
    };

    /// <summary>The client's messages as the engine takes them (they follow the agent's own system prompt).</summary>
    public List<ChatMessage> ToConversation() => (Messages ?? []).Select(m => m.ToChatMessage()).ToList();

    /// <summary>
    /// The client's changes to the agent's defaults. Its functions are declarations only: the model's calls to them end
    /// the run and go back to the client. The agent's own tools stay, except one the client declares under the same name.
    /// </summary>
    public void Configure(ChatOptions options)
    {
        if (Temperature is { } temperature) options.Temperature = (float)temperature;
        if (TopP is { } topP) options.TopP = (float)topP;
        if (FrequencyPenalty is { } frequency) options.FrequencyPenalty = (float)frequency;
        if (PresencePenalty is { } presence) options.PresencePenalty = (float)presence;
        if (OutputTokenLimit is { } limit) options.MaxOutputTokens = limit;
        if (Seed is { } seed) options.Seed = seed;
        if (StopSequences(out _) is { Count: > 0 } stop) options.StopSequences = stop;
        if (ResponseFormat?.ToChatResponseFormat() is { } format) options.ResponseFormat = format;
        if (ReasoningEffort is not null) options.Reasoning = new ReasoningOptions { Effort = Effort(ReasoningEffort) };
        if (ParallelToolCalls is { } parallel) options.AllowMultipleToolCalls = parallel;
        if (Tools is { Count: > 0 })
        {
            var declared = ClientToolNames;
            options.Tools =
            [
                .. (options.Tools ?? []).Where(t => !declared.Contains(t.Name)),
                .. Tools.Select(t => t.Function!.ToDeclaration()),
            ];
        }
        options.ToolMode = ToolChoice switch
        {
            { ValueKind: JsonValueKind.String } mode when mode.GetString() == "none" => ChatToolMode.None,
            { ValueKind: JsonValueKind.String } mode when mode.GetString() == "required" => ChatToolMode.RequireAny,
            { ValueKind: JsonValueKind.Object } choice when RequiredFunction(choice) is { } name => ChatToolMode.RequireSpecific(name),
            _ => options.ToolMode,
        };
    }

    [GeneratedRegex("^[a-zA-Z0-9_-]{1,64}$")]
    internal static partial Regex FunctionName();
}

public sealed class ChatCompletionStreamOptions
{
    public bool? IncludeUsage { get; init; }
}

public sealed class ChatCompletionMessage
{
    private static readonly string[] Roles = ["system", "developer", "user", "assistant", "tool"];

    public string? Role { get; init; }

    /// <summary>A string, null (an assistant message with tool calls), or an array of content parts.</summary>
    public JsonElement? Content { get; init; }

    public string? Name { get; init; }

    public List<ChatCompletionToolCall>? ToolCalls { get; init; }

    public string? ToolCallId { get; init; }

    /// <summary>The message's text: the string content, or its text (and refusal) parts joined.</summary>
    public string Text() => Content switch
    {
        { ValueKind: JsonValueKind.String } text => text.GetString() ?? "",
        { ValueKind: JsonValueKind.Array } parts => string.Concat(parts.EnumerateArray()
            .Select(p => p.ValueKind == JsonValueKind.Object && (p.TryGetProperty("text", out var t) || p.TryGetProperty("refusal", out t))
                         && t.ValueKind == JsonValueKind.String ? t.GetString() : null)),
        _ => "",
    };

    internal IEnumerable<ValidationResult> Validate(string at)
    {
        if (Role is null || !Roles.Contains(Role))
        {
            yield return ChatCompletionRequest.Error($"{at}.role", Role == "function"
                ? "The function role is deprecated; send tool messages."
                : $"role is one of {string.Join(", ", Roles)}.");
            yield break;
        }
        var hasContent = Content is { ValueKind: not JsonValueKind.Null };
        if (Content is { ValueKind: not (JsonValueKind.String or JsonValueKind.Array or JsonValueKind.Null) })
            yield return ChatCompletionRequest.Error($"{at}.content", "content is a string or an array of content parts.");
        if (Content is { ValueKind: JsonValueKind.Array } parts)
        {
            var j = 0;
            foreach (var part in parts.EnumerateArray())
            {
                if (PartError(part) is { } error) yield return ChatCompletionRequest.Error($"{at}.content[{j}]", error);
                j++;
            }
        }
        switch (Role)
        {
            case "assistant":
                if (!hasContent && ToolCalls is not { Count: > 0 })
                    yield return ChatCompletionRequest.Error($"{at}.content", "An assistant message has content, tool_calls or both.");
                foreach (var error in (ToolCalls ?? []).SelectMany((c, j) => c.Validate($"{at}.tool_calls[{j}]"))) yield return error;
                break;
            case "tool":
                if (string.IsNullOrWhiteSpace(ToolCallId))
                    yield return ChatCompletionRequest.Error($"{at}.tool_call_id", "A tool message names the call it answers in tool_call_id.");
                if (!hasContent) yield return ChatCompletionRequest.Error($"{at}.content", "A tool message has content.");
                break;
            default:
                if (!hasContent) yield return ChatCompletionRequest.Error($"{at}.content", $"A {Role} message has content.");
                if (ToolCalls is { Count: > 0 }) yield return ChatCompletionRequest.Error($"{at}.tool_calls", "Only assistant messages have tool_calls.");
                break;
        }
    }

    private string? PartError(JsonElement part)
    {
        var type = part.ValueKind == JsonValueKind.Object && part.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String
            ? t.GetString()
            : null;
        return type switch
        {
            "text" => part.TryGetProperty("text", out var text) && text.ValueKind == JsonValueKind.String ? null : "A text part has a string 'text'.",
            "refusal" when Role == "assistant" => null,
            "image_url" when Role == "user" => ImageUrl(part) is null
                ? "An image_url part has image_url.url: an http(s) URL or a data:image/… URL."
                : null,
            null => "A content part is an object with a type.",
            _ => $"Content parts of type '{type}' are not supported here; send text" + (Role == "user" ? " or image_url." : "."),
        };
    }

    private static Uri? ImageUrl(JsonElement part) =>
        part.TryGetProperty("image_url", out var image) && image.ValueKind == JsonValueKind.Object
        && image.TryGetProperty("url", out var url) && url.ValueKind == JsonValueKind.String
        && Uri.TryCreate(url.GetString(), UriKind.Absolute, out var uri)
        && (uri.Scheme is "http" or "https" || (uri.Scheme == "data" && url.GetString()!.StartsWith("data:image/", StringComparison.Ordinal)))
            ? uri
            : null;

    internal ChatMessage ToChatMessage()
    {
        var role = Role switch
        {
            // "developer" is OpenAI's newer name for system; every provider knows "system".
            "system" or "developer" => ChatRole.System,
            "assistant" => ChatRole.Assistant,
            "tool" => ChatRole.Tool,
            _ => ChatRole.User,
        };
        if (Role == "tool") return new ChatMessage(role, [new FunctionResultContent(ToolCallId!, Text())]);

        var contents = new List<AIContent>();
        if (Content is { ValueKind: JsonValueKind.String } text) contents.Add(new TextContent(text.GetString()));
        if (Content is { ValueKind: JsonValueKind.Array } parts)
        {
            foreach (var part in parts.EnumerateArray())
            {
                if (ImageUrl(part) is { } uri)
                    contents.Add(uri.Scheme == "data" ? new DataContent(uri) : new UriContent(uri, "image/*"));
                else if (part.TryGetProperty("text", out var t) || part.TryGetProperty("refusal", out t))
                    contents.Add(new TextContent(t.GetString()));
            }
        }
        contents.AddRange((ToolCalls ?? []).Select(c => c.ToFunctionCall()));
        return new ChatMessage(role, contents) { AuthorName = Name };
    }
}

public sealed class ChatCompletionToolCall
{
    public string? Id { get; init; }
    public string? Type { get; init; }
    public ChatCompletionFunctionCall? Function { get; init; }

    internal IEnumerable<ValidationResult> Validate(string at)
    {
        if (string.IsNullOrWhiteSpace(Id)) yield return ChatCompletionRequest.Error($"{at}.id", "A tool call has an id.");
        if (Type is not (null or "function")) yield return ChatCompletionRequest.Error($"{at}.type", "Only function tool calls are supported.");
        if (string.IsNullOrWhiteSpace(Function?.Name)) yield return ChatCompletionRequest.Error($"{at}.function.name", "A tool call names its function.");
        if (Function?.ParsedArguments() is null)
            yield return ChatCompletionRequest.Error($"{at}.function.arguments", "function.arguments is a JSON object, as a string.");
    }

    internal FunctionCallContent ToFunctionCall() => new(Id!, Function!.Name!, Function.ParsedArguments());
}

public sealed class ChatCompletionFunctionCall
{
    public string? Name { get; init; }

    /// <summary>The arguments as a JSON string (OpenAI's shape).</summary>
    public string? Arguments { get; init; }

    internal Dictionary<string, object?>? ParsedArguments()
    {
        if (string.IsNullOrWhiteSpace(Arguments)) return [];
        try
        {
            using var document = JsonDocument.Parse(Arguments);
            return document.RootElement.ValueKind == JsonValueKind.Object
                ? document.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value.Clone())
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}

public sealed class ChatCompletionTool
{
    public string? Type { get; init; }
    public ChatCompletionFunction? Function { get; init; }

    internal IEnumerable<ValidationResult> Validate(string at)
    {
        if (Type != "function") yield return ChatCompletionRequest.Error($"{at}.type", "Only tools of type 'function' are supported.");
        if (Function is null)
        {
            yield return ChatCompletionRequest.Error($"{at}.function", "A function tool has a function.");
            yield break;
        }
        if (Function.Name is null || !ChatCompletionRequest.FunctionName().IsMatch(Function.Name))
            yield return ChatCompletionRequest.Error($"{at}.function.name", "A function name is 1 to 64 letters, digits, '_' or '-'.");
        if (Function.Parameters is { ValueKind: not (JsonValueKind.Object or JsonValueKind.Null) })
            yield return ChatCompletionRequest.Error($"{at}.function.parameters", "function.parameters is a JSON Schema object.");
    }
}

public sealed class ChatCompletionFunction
{
    public string? Name { get; init; }
    public string? Description { get; init; }

    /// <summary>The arguments' JSON Schema; no parameters when absent.</summary>
    public JsonElement? Parameters { get; init; }

    /// <summary>Accepted; the provider's default strictness applies.</summary>
    public bool? Strict { get; init; }

    private static readonly JsonElement NoParameters = JsonDocument.Parse("""{"type":"object","properties":{}}""").RootElement.Clone();

    internal AIFunctionDeclaration ToDeclaration() =>
        AIFunctionFactory.CreateDeclaration(Name!, Description ?? "", Parameters is { ValueKind: JsonValueKind.Object } schema ? schema : NoParameters);
}

public sealed class ChatCompletionResponseFormat
{
    public string? Type { get; init; }
    public ChatCompletionJsonSchema? JsonSchema { get; init; }

    internal (string Field, string Message)? Validate() => Type switch
    {
        "text" or "json_object" => null,
        "json_schema" when JsonSchema is null => ("response_format.json_schema", "A json_schema response format has json_schema {name, schema}."),
        "json_schema" when JsonSchema.Name is null || !ChatCompletionRequest.FunctionName().IsMatch(JsonSchema.Name) =>
            ("response_format.json_schema.name", "json_schema.name is 1 to 64 letters, digits, '_' or '-'."),
        "json_schema" when JsonSchema.Schema is { ValueKind: not JsonValueKind.Object } =>
            ("response_format.json_schema.schema", "json_schema.schema is a JSON Schema object."),
        "json_schema" => null,
        _ => ("response_format.type", "response_format.type is text, json_object or json_schema."),
    };

    internal ChatResponseFormat? ToChatResponseFormat() => Type switch
    {
        "text" => ChatResponseFormat.Text,
        "json_object" => ChatResponseFormat.Json,
        "json_schema" => ChatResponseFormat.ForJsonSchema(JsonSchema!.Schema ?? JsonDocument.Parse("{}").RootElement.Clone(),
            JsonSchema.Name, JsonSchema.Description),
        _ => null,
    };
}

public sealed class ChatCompletionJsonSchema
{
    public string? Name { get; init; }
    public string? Description { get; init; }
    public JsonElement? Schema { get; init; }

    /// <summary>Accepted; structured output is requested strict whatever this says.</summary>
    public bool? Strict { get; init; }
}

/// <summary>OpenAI's embeddings request (https://platform.openai.com/docs/api-reference/embeddings/create).</summary>
public sealed class EmbeddingsRequest : IValidatableObject
{
    public const int MaxInputs = 2_048;

    public string? Model { get; init; }

    /// <summary>A string or an array of strings (token arrays are refused: send text).</summary>
    public JsonElement? Input { get; init; }

    /// <summary>float (default) or base64 (little-endian float32, what the official SDKs ask for).</summary>
    public string? EncodingFormat { get; init; }

    public int? Dimensions { get; init; }

    public string? User { get; init; }

    [JsonIgnore]
    public IReadOnlyList<string> Texts => Input switch
    {
        { ValueKind: JsonValueKind.String } one => [one.GetString()!],
        { ValueKind: JsonValueKind.Array } many => many.EnumerateArray().Select(t => t.GetString()!).ToList(),
        _ => [],
    };

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (string.IsNullOrWhiteSpace(Model))
            yield return ChatCompletionRequest.Error("model", "model is required: the embedding model's name, or 'local'.");
        switch (Input)
        {
            case { ValueKind: JsonValueKind.String } one when one.GetString()!.Length > 0:
                break;
            case { ValueKind: JsonValueKind.Array } many when many.GetArrayLength() is > 0 and <= MaxInputs
                                                          && many.EnumerateArray().All(t => t.ValueKind == JsonValueKind.String && t.GetString()!.Length > 0):
                break;
            case { ValueKind: JsonValueKind.Array } tokens when tokens.EnumerateArray().Any(t => t.ValueKind is JsonValueKind.Number or JsonValueKind.Array):
                yield return ChatCompletionRequest.Error("input", "Token arrays are not supported; send the text.");
                break;
            default:
                yield return ChatCompletionRequest.Error("input", $"input is a non-empty string or an array of 1 to {MaxInputs} non-empty strings.");
                break;
        }
        if (EncodingFormat is not (null or "float" or "base64"))
            yield return ChatCompletionRequest.Error("encoding_format", "encoding_format is float or base64.");
        if (Dimensions is < 1)
            yield return ChatCompletionRequest.Error("dimensions", "dimensions must be at least 1.");
    }
}
