using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Pointer;
using Json.Schema;

namespace AgentPlatform.Engine.Tools;

/// <summary>
/// Checks a tool call's arguments against the tool's JSON schema before the tool runs, so a model's malformed call
/// comes back to it as field errors instead of a tool's exception.
/// </summary>
/// <remarks>
/// JsonSchema.Net checks (draft 2020-12 unless <c>$schema</c> names another, <c>format</c> asserted) and words the
/// messages; they are filed under the field the model wrote ("limit", "filter.name", "tags[1]", <see cref="RootField"/>)
/// and prefixed with it. Only a missing or unknown property, non-object arguments and a failure the library words
/// nothing for (a value matching a <c>not</c>) get sentences of our own.
/// Null is added to the enum of a nullable parameter's generated schema, which lists only the strings.
/// A schema the library cannot compile is not checked; the tool itself rejects what it cannot use.
/// </remarks>
public static class ToolArgumentValidator
{
    /// <summary>The key used for errors about the arguments as a whole (e.g. not a JSON object).</summary>
    public const string RootField = "arguments";

    private const int MaxCachedSchemas = 256;
    private static readonly Uri BaseUri = new("urn:agentplatform:tool-arguments");
    private static readonly EvaluationOptions Options = new() { OutputFormat = OutputFormat.Hierarchical, RequireFormatValidation = true, Culture = CultureInfo.InvariantCulture };
    private static readonly ConcurrentDictionary<string, JsonSchema?> Cache = new(StringComparer.Ordinal);
    private static readonly IReadOnlyDictionary<string, string[]> NoErrors = new Dictionary<string, string[]>();

    /// <summary>Field path ("limit", "filter.name", "tags[0]") → messages; empty when the arguments are valid.</summary>
    public static IReadOnlyDictionary<string, string[]> Validate(JsonElement schema, JsonElement arguments)
    {
        if (schema.ValueKind is not (JsonValueKind.Object or JsonValueKind.True or JsonValueKind.False)) return NoErrors;
        if (arguments.ValueKind == JsonValueKind.Undefined) return new Dictionary<string, string[]> { [RootField] = [NotAnObject(arguments)] };
        var errors = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        try
        {
            if (Compile(schema)?.Evaluate(arguments, Options) is { IsValid: false } results) Explain(results, "", arguments, errors);
        }
        catch (JsonSchemaException)
        {
            // e.g. a $ref that only fails to resolve when an argument reaches it: left to the tool, like an uncompilable schema
        }
        return errors.Count == 0 ? NoErrors : errors.ToDictionary(e => e.Key, e => e.Value.ToArray(), StringComparer.Ordinal);
    }

    private static JsonSchema? Compile(JsonElement schema)
    {
        var text = schema.GetRawText();
        if (Cache.TryGetValue(text, out var cached)) return cached;
        if (Cache.Count >= MaxCachedSchemas) Cache.Clear(); // tools' schemas are few; this only bounds a pathological stream
        try
        {
            var node = JsonNode.Parse(text);
            AllowNullInNullableEnums(node);
            // A registry of its own: the global one refuses a second schema with the same $id.
            var build = new BuildOptions { SchemaRegistry = new SchemaRegistry(), Dialect = Dialect.Draft202012 };
            return Cache[text] = JsonSchema.Build(JsonElement.Parse(node!.ToJsonString()), build, BaseUri);
        }
        catch (Exception e) when (e is JsonSchemaException or JsonException or ArgumentException)
        {
            return Cache[text] = null;
        }
    }

    private static void AllowNullInNullableEnums(JsonNode? node)
    {
        if (node is JsonObject schema && schema["enum"] is JsonArray values && values.All(v => v is not null) && IsOrHasNull(schema["type"])) values.Add(null);
        IEnumerable<JsonNode?> children = node switch
        {
            JsonArray array => array,
            JsonObject obj => obj.Where(p => p.Key is not ("enum" or "const" or "default" or "examples")).Select(p => p.Value),
            _ => [],
        };
        foreach (var child in children) AllowNullInNullableEnums(child);

        static bool IsOrHasNull(JsonNode? type) => type is JsonArray list ? list.Any(IsOrHasNull)
            : type is JsonValue value && value.GetValueKind() == JsonValueKind.String && value.GetValue<string>() == "null";
    }

    /// <summary>
    /// Files a failing node's messages (at <paramref name="path"/>) and those of the failing subschemas that decided it:
    /// not those under not/if/contains, nor an anyOf/oneOf's failed branches when another branch matched. Returns true.
    /// </summary>
    private static bool Explain(EvaluationResults node, string path, JsonElement arguments, Dictionary<string, List<string>> errors)
    {
        var field = path.Length == 0 ? RootField : path;
        var (depth, at) = (node.EvaluationPath.SegmentCount, node.InstanceLocation.SegmentCount);
        foreach (var (keyword, message) in node.Errors ?? [])
        {
            if (keyword == "required" && Missing(message) is { } missing)
                foreach (var name in missing) Add(errors, Join(path, name), $"{Join(path, name)} is required.");
            else if (keyword == "" && depth > 0 && node.EvaluationPath[depth - 1].ToString() is "additionalProperties" or "unevaluatedProperties")
                Add(errors, field, at == 1 ? $"{path} is not a parameter of this tool." : $"{path} is not a known field.");
            else if (keyword == "type" && path.Length == 0 && arguments.ValueKind != JsonValueKind.Object)
                Add(errors, field, NotAnObject(arguments));
            else
                Add(errors, field, $"{field}: {message}");
        }
        var reported = node.Errors is { Count: > 0 };
        var children = (node.Details ?? []).ToLookup(c => c.EvaluationPath.SegmentCount > depth ? c.EvaluationPath[depth].ToString() : "");
        foreach (var group in children)
        {
            var matched = group.Count(c => c.IsValid);
            if (group.Key is "anyOf" or "oneOf" && matched > 0)
            {
                if (group.Key == "oneOf" && matched > 1) reported = Add(errors, field, $"{field}: {ErrorMessages.ReplaceToken(ErrorMessages.GetOneOf(Options.Culture), "count", matched)}");
                continue;
            }
            if (group.Key is "not" or "if" or "contains") continue;
            // JsonSchema.Net 8.0.5 numbers the items `items` checks after `prefixItems` from 0 (index 2 of a one-prefix
            // tuple comes as /1); an `items` index below prefixItems' count shows it, and they are moved back.
            var prefix = children["prefixItems"].Count();
            var shift = group.Key == "items" && group.Any(c => Index(c.InstanceLocation, at) < prefix) ? prefix : 0;
            foreach (var child in group.Where(c => !c.IsValid))
            {
                var childPath = child.InstanceLocation.SegmentCount <= at ? path
                    : group.Key is "items" or "prefixItems" or "unevaluatedItems" or "additionalItems" && Index(child.InstanceLocation, at) is int index ? $"{path}[{index + shift}]"
                    : Join(path, Segment(child.InstanceLocation, at));
                reported = Explain(child, childPath, arguments, errors);
            }
        }
        return reported || Add(errors, field, $"{field}: Value does not match the schema"); // e.g. a `not` it matched: the library says nothing
    }

    private static string Segment(JsonPointer location, int at) => location[at].ToString().Replace("~1", "/").Replace("~0", "~");

    private static int? Index(JsonPointer location, int at) => location.SegmentCount > at && int.TryParse(Segment(location, at), out var index) ? index : null;

    /// <summary>The names in the library's "Required properties [[missing]] are not present" (the token is a JSON array).</summary>
    private static string[]? Missing(string message)
    {
        try
        {
            var names = JsonElement.Parse(message[message.IndexOf('[')..(message.LastIndexOf(']') + 1)]);
            return [.. names.EnumerateArray().Where(e => e.ValueKind == JsonValueKind.String).Select(e => e.GetString()!)];
        }
        catch (Exception e) when (e is JsonException or ArgumentOutOfRangeException or InvalidOperationException)
        {
            return null; // then the library's sentence is reported under the object
        }
    }

    private static bool Add(Dictionary<string, List<string>> errors, string field, string message)
    {
        if (!errors.TryGetValue(field, out var list)) errors[field] = list = [];
        if (!list.Contains(message)) list.Add(message);
        return true;
    }

    private static string NotAnObject(JsonElement arguments) => "The arguments must be an object, not " + arguments.ValueKind switch
    {
        JsonValueKind.Array => "an array.", JsonValueKind.String => "a string.", JsonValueKind.Number => "a number.",
        JsonValueKind.True or JsonValueKind.False => "a boolean.", JsonValueKind.Null => "null.", _ => "nothing.",
    };

    private static string Join(string path, string name) => path.Length == 0 ? name : $"{path}.{name}";
}
