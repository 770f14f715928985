using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Pointer;
using Json.Schema;

namespace AgentPlatform.Engine.Tools;

/// <summary>
/// Checks a tool call's arguments against the tool's JSON schema before the tool runs, so a model's
/// malformed call comes back to it as a readable list of field errors instead of a tool's exception.
/// </summary>
/// <remarks>
/// <para>
/// The checking is JsonSchema.Net's: draft 2020-12 unless the schema's <c>$schema</c> names another supported
/// draft, with <c>$ref</c>/<c>$defs</c> resolved inside the schema and <c>format</c> asserted (a date-time must be
/// RFC 3339, with an offset). Each schema is compiled once and kept in a small cache keyed by its text.
/// </para>
/// <para>
/// This class only translates the library's report. The library names a failure by keyword and JSON pointer
/// (<c>maximum</c> at <c>/limit</c>, <c>required</c> at <c>/filter</c>, the false schema at <c>/extra</c>) in its own
/// words; a model needs the field as it wrote it ("limit", "filter.name", "tags[1]", <see cref="RootField"/> for the
/// whole) and a sentence naming it, so pointers are mapped to those paths, a missing property is reported under its
/// own path, and messages are worded from the keyword and the schema's value. Errors inside an anyOf/oneOf branch,
/// a <c>not</c>, an <c>if</c> or a <c>contains</c> are the library's working, not the caller's mistakes: a failed
/// anyOf/oneOf is reported once, where it applies.
/// </para>
/// <para>
/// One leniency is kept on purpose: a nullable parameter's generated schema says type ["string","null"] but lists
/// only the strings in <c>enum</c>, so null is added to such enums before compiling. A schema the library cannot
/// compile (an unknown draft, an unresolvable <c>$ref</c>, a pattern .NET cannot parse) is not checked; the tool
/// itself still rejects what it cannot use.
/// </para>
/// </remarks>
public static class ToolArgumentValidator
{
    /// <summary>The key used for errors about the arguments as a whole (e.g. not a JSON object).</summary>
    public const string RootField = "arguments";

    private const int MaxCachedSchemas = 256;

    private static readonly Uri BaseUri = new("urn:agentplatform:tool-arguments");
    private static readonly EvaluationOptions Options = new() { OutputFormat = OutputFormat.Hierarchical, RequireFormatValidation = true };
    private static readonly ConcurrentDictionary<string, Compiled?> Cache = new(StringComparer.Ordinal);
    private static readonly IReadOnlyDictionary<string, string[]> NoErrors = new Dictionary<string, string[]>();

    // Keywords whose subschemas are named (properties/<name>) and those whose failing subschemas are expected.
    private static readonly HashSet<string> KeyedKeywords = ["properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies"];
    private static readonly HashSet<string> ProbeKeywords = ["not", "if", "contains"];

    private sealed record Compiled(JsonSchema Schema, JsonElement Root);

    /// <summary>Field path ("limit", "filter.name", "tags[0]") → messages; empty when the arguments are valid.</summary>
    public static IReadOnlyDictionary<string, string[]> Validate(JsonElement schema, JsonElement arguments)
    {
        if (schema.ValueKind is not (JsonValueKind.Object or JsonValueKind.True or JsonValueKind.False)) return NoErrors;
        if (arguments.ValueKind == JsonValueKind.Undefined)
            return new Dictionary<string, string[]> { [RootField] = ["The arguments are missing."] };
        if (Compile(schema) is not { } compiled) return NoErrors;

        EvaluationResults results;
        try
        {
            results = compiled.Schema.Evaluate(arguments, Options);
        }
        catch (JsonSchemaException)
        {
            return NoErrors; // e.g. a $ref that only fails to resolve when an argument reaches it
        }
        if (results.IsValid) return NoErrors;

        var report = new Report(arguments, compiled.Root, BaseOf(results.SchemaLocation));
        Explain(results, compiled.Root, "", [], report);
        return report.Errors.ToDictionary(e => e.Key, e => e.Value.ToArray(), StringComparer.Ordinal);
    }

    private static Compiled? Compile(JsonElement schema)
    {
        var text = schema.GetRawText();
        if (Cache.TryGetValue(text, out var cached)) return cached;

        Compiled? compiled;
        try
        {
            var node = JsonNode.Parse(text);
            AllowNullInNullableEnums(node);
            var root = JsonElement.Parse(node!.ToJsonString());
            // A registry of its own: the global one refuses a second schema with the same $id.
            var build = new BuildOptions { SchemaRegistry = new SchemaRegistry(), Dialect = Dialect.Draft202012 };
            compiled = new Compiled(JsonSchema.Build(root, build, BaseUri), root);
        }
        catch (Exception e) when (e is JsonSchemaException or JsonException or ArgumentException)
        {
            compiled = null;
        }

        if (Cache.Count >= MaxCachedSchemas) Cache.Clear(); // tools' schemas are few; this only bounds a pathological stream
        Cache[text] = compiled;
        return compiled;
    }

    private static void AllowNullInNullableEnums(JsonNode? node)
    {
        if (node is JsonArray array)
        {
            foreach (var item in array) AllowNullInNullableEnums(item);
        }
        else if (node is JsonObject schema)
        {
            if (schema["enum"] is JsonArray values && values.All(v => v is not null) && IsOrHasNull(schema["type"])) values.Add(null);
            foreach (var (keyword, child) in schema)
            {
                if (keyword is not ("enum" or "const" or "default" or "examples")) AllowNullInNullableEnums(child);
            }
        }

        static bool IsOrHasNull(JsonNode? type) => type switch
        {
            JsonValue value => value.GetValueKind() == JsonValueKind.String && value.GetValue<string>() == "null",
            JsonArray list => list.Any(IsOrHasNull),
            _ => false,
        };
    }

    private sealed class Report(JsonElement arguments, JsonElement root, string baseUri)
    {
        public Dictionary<string, List<string>> Errors { get; } = new(StringComparer.Ordinal);
        public JsonElement Arguments => arguments;
        public JsonElement Root => root;
        public string BaseUri => baseUri;

        public void Add(string path, string message)
        {
            var key = path.Length == 0 ? RootField : path;
            if (!Errors.TryGetValue(key, out var list)) Errors[key] = list = [];
            if (!list.Contains(message)) list.Add(message);
        }
    }

    /// <summary>
    /// Reports why a failing node failed. <paramref name="schema"/> is its schema, when it could be found;
    /// <paramref name="shifts"/> corrects array indexes in instance locations (see <see cref="ItemsShift"/>).
    /// </summary>
    private static void Explain(EvaluationResults node, JsonElement? schema, string via, (int Segment, int By)[] shifts, Report report)
    {
        var (path, value) = Locate(node.InstanceLocation, report.Arguments, shifts);
        var reported = false;
        foreach (var (keyword, message) in node.Errors ?? [])
        {
            Describe(keyword, message, path, value, schema, via, node.InstanceLocation.SegmentCount, report);
            reported = true;
        }

        var branches = new Dictionary<string, int>(StringComparer.Ordinal); // anyOf/oneOf → how many branches matched
        var itemsShift = ItemsShift(node, schema);
        foreach (var child in node.Details ?? [])
        {
            var (keyword, childSchema) = Step(node, child, schema, report);
            if (keyword is "anyOf" or "oneOf")
            {
                branches[keyword] = branches.GetValueOrDefault(keyword) + (child.IsValid ? 1 : 0);
            }
            else if (keyword == "not" && child.IsValid)
            {
                report.Add(path, $"{Name(path)} {Verb(path, "matches", "match")} a form this tool rules out.");
                reported = true;
            }
            else if (!child.IsValid && !ProbeKeywords.Contains(keyword))
            {
                var childShifts = keyword == "items" && itemsShift > 0 ? [.. shifts, (node.InstanceLocation.SegmentCount, itemsShift)] : shifts;
                Explain(child, childSchema, keyword, childShifts, report);
                reported = true;
            }
        }

        foreach (var (keyword, valid) in branches)
        {
            if (valid == 0) report.Add(path, $"{Name(path)} {Verb(path, "does", "do")} not match any of the forms this tool accepts.");
            else if (keyword == "oneOf" && valid > 1) report.Add(path, $"{Name(path)} {Verb(path, "matches", "match")} more than one of the forms this tool accepts; it must match exactly one.");
            else continue;
            reported = true;
        }

        if (!reported) report.Add(path, $"{Name(path)} {Verb(path, "does", "do")} not match this tool's schema.");
    }

    /// <summary>The keyword that led from <paramref name="node"/> to <paramref name="child"/>, and the child's schema.</summary>
    private static (string Keyword, JsonElement? Schema) Step(EvaluationResults node, EvaluationResults child, JsonElement? schema, Report report)
    {
        var depth = node.EvaluationPath.SegmentCount;
        if (child.EvaluationPath.SegmentCount <= depth) return ("", schema);
        var keyword = Decode(child.EvaluationPath[depth].ToString());

        if (keyword is "$ref" or "$dynamicRef" or "$recursiveRef") return (keyword, Resolve(child.SchemaLocation, report));
        if (schema is not { ValueKind: JsonValueKind.Object } parent || !parent.TryGetProperty(keyword, out var next)) return (keyword, null);
        if (KeyedKeywords.Contains(keyword) || next.ValueKind == JsonValueKind.Array)
        {
            // properties/<name>, anyOf/<index>; a single subschema (items, not…) takes only the keyword.
            if (child.EvaluationPath.SegmentCount <= depth + 1) return (keyword, null);
            var key = Decode(child.EvaluationPath[depth + 1].ToString());
            if (next.ValueKind == JsonValueKind.Object && next.TryGetProperty(key, out var named)) return (keyword, named);
            if (next.ValueKind == JsonValueKind.Array && int.TryParse(key, out var index) && index < next.GetArrayLength()) return (keyword, next[index]);
            return (keyword, null);
        }
        return (keyword, next);
    }

    /// <summary>
    /// JsonSchema.Net 8.0.5 numbers the array items that <c>items</c> checks after <c>prefixItems</c> from 0 in their
    /// instance locations (the item at index 2 of a one-prefix tuple is reported at /1). Returns how far to move them:
    /// prefixItems' length when some such location is below it (so a fixed library is left alone), else 0.
    /// </summary>
    private static int ItemsShift(EvaluationResults node, JsonElement? schema)
    {
        if (schema is not { ValueKind: JsonValueKind.Object } s || !s.TryGetProperty("prefixItems", out var prefix)
            || prefix.ValueKind != JsonValueKind.Array || prefix.GetArrayLength() == 0) return 0;
        var depth = node.InstanceLocation.SegmentCount;
        var length = prefix.GetArrayLength();
        var misnumbered = (node.Details ?? []).Any(child =>
            child.EvaluationPath.SegmentCount > node.EvaluationPath.SegmentCount
            && child.EvaluationPath[node.EvaluationPath.SegmentCount].ToString() == "items"
            && child.InstanceLocation.SegmentCount > depth
            && int.TryParse(child.InstanceLocation[depth].ToString(), out var index) && index < length);
        return misnumbered ? length : 0;
    }

    /// <summary>A $ref's target, when the library resolved it to a JSON pointer inside this schema.</summary>
    private static JsonElement? Resolve(Uri location, Report report)
    {
        var text = location.OriginalString;
        var hash = text.IndexOf('#');
        if (hash < 0 || text[..hash] != report.BaseUri) return null;
        var fragment = Uri.UnescapeDataString(text[(hash + 1)..]);
        return fragment.Length == 0 ? report.Root : JsonPointer.TryParse(fragment, out var pointer) ? pointer.Evaluate(report.Root) : null;
    }

    private static string BaseOf(Uri location) => location.OriginalString.Split('#')[0];

    /// <summary>The field path of a JSON pointer into the arguments ("/tags/1" → "tags[1]") and the value there.</summary>
    private static (string Path, JsonElement? Value) Locate(JsonPointer pointer, JsonElement arguments, (int Segment, int By)[] shifts)
    {
        var path = new StringBuilder();
        JsonElement? current = arguments;
        for (var i = 0; i < pointer.SegmentCount; i++)
        {
            var segment = Decode(pointer[i].ToString());
            if (current is { ValueKind: JsonValueKind.Array } array && int.TryParse(segment, out var index))
            {
                foreach (var shift in shifts) index += shift.Segment == i ? shift.By : 0;
                path.Append('[').Append(index).Append(']');
                current = index < array.GetArrayLength() ? array[index] : null;
            }
            else
            {
                if (path.Length > 0) path.Append('.');
                path.Append(segment);
                current = current is { ValueKind: JsonValueKind.Object } obj && obj.TryGetProperty(segment, out var property) ? property : null;
            }
        }
        return (path.ToString(), current);
    }

    private static void Describe(string keyword, string message, string path, JsonElement? value, JsonElement? schema, string via, int depth, Report report)
    {
        var name = Name(path);
        JsonElement rule = default;
        var hasRule = schema is { ValueKind: JsonValueKind.Object } s && s.TryGetProperty(keyword, out rule);

        if (keyword == "required" && hasRule && rule.ValueKind == JsonValueKind.Array && value is { ValueKind: JsonValueKind.Object } obj)
        {
            var missing = rule.EnumerateArray().Where(r => r.ValueKind == JsonValueKind.String).Select(r => r.GetString()!)
                .Where(required => !obj.TryGetProperty(required, out _)).ToList();
            foreach (var property in missing) report.Add(Join(path, property), $"{Join(path, property)} is required.");
            if (missing.Count > 0) return;
        }

        var sentence = keyword switch
        {
            // The false schema: a property the schema does not list, or a value that is never allowed.
            "" when via is "additionalProperties" or "unevaluatedProperties" =>
                depth == 1 ? $"{path} is not a parameter of this tool." : $"{path} is not a known field.",
            "" => $"{name} {Verb(path, "is", "are")} not allowed.",
            _ when !hasRule => null,
            "type" => $"{name} must be {Types(rule)}, not {KindOf(value)}.",
            "enum" => $"{name} must be one of: {string.Join(", ", rule.EnumerateArray().Select(a => a.GetRawText()))}.",
            "const" => $"{name} must be {rule.GetRawText()}.",
            "minimum" => $"{name} must be at least {rule.GetRawText()}.",
            "maximum" => $"{name} must be at most {rule.GetRawText()}.",
            "exclusiveMinimum" => $"{name} must be greater than {rule.GetRawText()}.",
            "exclusiveMaximum" => $"{name} must be less than {rule.GetRawText()}.",
            "multipleOf" => $"{name} must be a multiple of {rule.GetRawText()}.",
            "minLength" => $"{name} must be at least {Count(rule, "character")} long.",
            "maxLength" => $"{name} must be at most {Count(rule, "character")} long.",
            "pattern" => $"{name} must match the pattern {rule.GetString()}.",
            "format" => $"{name} must be {FormatName(rule.GetString())}.",
            "minItems" => $"{name} must have at least {Count(rule, "item")}.",
            "maxItems" => $"{name} must have at most {Count(rule, "item")}.",
            "uniqueItems" => $"{name} must not contain the same item twice.",
            "minProperties" => $"{name} must have at least {Count(rule, "field")}.",
            "maxProperties" => $"{name} must have at most {Count(rule, "field")}.",
            _ => null,
        };
        // Keywords without a sentence of their own keep the library's words ("Value should contain at least 1 matching items").
        var detail = message.TrimEnd('.');
        report.Add(path, sentence ?? (detail.Length == 0
            ? $"{name} {Verb(path, "is", "are")} not valid."
            : $"{name} {Verb(path, "is", "are")} not valid ({char.ToLowerInvariant(detail[0])}{detail[1..]})."));
    }

    private static string Types(JsonElement type) => type.ValueKind == JsonValueKind.Array
        ? string.Join(" or ", type.EnumerateArray().Select(t => Article(t.GetString() ?? "")))
        : Article(type.GetString() ?? "");

    private static string Article(string type) => type switch
    {
        "object" or "array" or "integer" => "an " + type,
        "null" => "null",
        _ => "a " + type,
    };

    private static string KindOf(JsonElement? value) => value?.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => "missing",
    };

    private static string FormatName(string? format) => format switch
    {
        "date-time" => "a date-time with an offset, e.g. 2025-01-31T09:30:00Z",
        "date" => "a date, e.g. 2025-01-31",
        "time" => "a time with an offset, e.g. 09:30:00Z",
        _ => $"a valid {format}", // "a valid email", "a valid uuid", "a valid uri"
    };

    private static string Count(JsonElement limit, string noun) => limit.GetRawText() is var n && n == "1" ? $"1 {noun}" : $"{n} {noun}s";

    private static string Verb(string path, string singular, string plural) => path.Length == 0 ? plural : singular;

    private static string Decode(string segment) => segment.Replace("~1", "/").Replace("~0", "~");

    private static string Join(string path, string name) => path.Length == 0 ? name : $"{path}.{name}";

    private static string Name(string path) => path.Length == 0 ? "The arguments" : path;
}
