using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;

namespace AgentPlatform.Engine.Tools;

/// <summary>JSON conventions of tool results: snake_case like the rest of the platform's JSON.</summary>
internal static class ToolJson
{
    public static readonly JsonSerializerOptions Options = new(AIJsonUtilities.DefaultOptions)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DictionaryKeyPolicy = null,
        WriteIndented = false,
    };

    public static readonly JsonElement EmptyObject = JsonDocument.Parse("{}").RootElement.Clone();

    /// <summary>A tool's return value as JSON: JSON stays as it is, text becomes a JSON string, null stays null.</summary>
    public static JsonElement? ToElement(object? value, JsonSerializerOptions? options = null) => value switch
    {
        null => null,
        JsonElement { ValueKind: JsonValueKind.Undefined } => null,
        JsonElement element => element,
        JsonNode node => JsonSerializer.SerializeToElement(node, Options),
        _ => Serialize(value, options ?? Options),
    };

    private static JsonElement Serialize(object value, JsonSerializerOptions options)
    {
        try
        {
            return JsonSerializer.SerializeToElement(value, options.GetTypeInfo(value.GetType()));
        }
        catch (NotSupportedException)
        {
            // A tool's options may only know its own types (source-generated); ours fall back to reflection.
            return JsonSerializer.SerializeToElement(value, Options.GetTypeInfo(value.GetType()));
        }
    }
}
