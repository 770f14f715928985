using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace AgentPlatform.Engine.Tools;

/// <summary>
/// Checks a tool call's arguments against the tool's JSON schema before the tool runs, so a model's
/// malformed call comes back to it as a readable list of field errors instead of a tool's exception.
/// </summary>
/// <remarks>
/// Hand-written because JsonSchema.Net, the usual .NET validator, does not restore from the package
/// mirror this project builds with (its dependencies JsonPointer.Net and Json.More.Net are missing).
/// It covers what tool schemas use in practice: type (also as a list), required, properties,
/// additionalProperties, items, enum, const, minimum/maximum (and exclusive), minLength/maxLength,
/// pattern, minItems/maxItems, allOf/anyOf/oneOf. Other keywords ($ref, format…) are not checked;
/// the tool itself still rejects what it cannot use.
/// </remarks>
public static class ToolArgumentValidator
{
    /// <summary>The key used for errors about the arguments as a whole (e.g. not a JSON object).</summary>
    public const string RootField = "arguments";

    private const int MaxDepth = 32;

    /// <summary>Field path ("limit", "filter.name", "tags[0]") → messages; empty when the arguments are valid.</summary>
    public static IReadOnlyDictionary<string, string[]> Validate(JsonElement schema, JsonElement arguments)
    {
        var errors = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        Check(schema, arguments, "", errors, 0);
        return errors.ToDictionary(e => e.Key, e => e.Value.ToArray(), StringComparer.Ordinal);
    }

    private static void Check(JsonElement schema, JsonElement value, string path, Dictionary<string, List<string>> errors, int depth)
    {
        if (depth > MaxDepth) return;
        if (schema.ValueKind == JsonValueKind.False)
        {
            Add(errors, path, $"{Name(path)} is not allowed.");
            return;
        }
        if (schema.ValueKind != JsonValueKind.Object) return; // true or a missing schema accepts anything

        if (schema.TryGetProperty("type", out var type) && !TypeMatches(type, value))
        {
            Add(errors, path, $"{Name(path)} must be {Describe(type)}, not {KindOf(value)}.");
            return; // further checks would only repeat the same mistake
        }

        // A nullable parameter's generated schema says type ["string","null"] but lists only the strings in enum.
        var allowedNull = value.ValueKind == JsonValueKind.Null && type.ValueKind != JsonValueKind.Undefined;
        if (schema.TryGetProperty("enum", out var allowed) && allowed.ValueKind == JsonValueKind.Array && !allowedNull
            && !allowed.EnumerateArray().Any(a => JsonElement.DeepEquals(a, value)))
        {
            Add(errors, path, $"{Name(path)} must be one of: {string.Join(", ", allowed.EnumerateArray().Select(a => a.GetRawText()))}.");
        }
        if (schema.TryGetProperty("const", out var constant) && !JsonElement.DeepEquals(constant, value))
            Add(errors, path, $"{Name(path)} must be {constant.GetRawText()}.");

        switch (value.ValueKind)
        {
            case JsonValueKind.Number when value.TryGetDouble(out var number):
                CheckNumber(schema, number, path, errors);
                break;
            case JsonValueKind.String:
                CheckString(schema, value.GetString()!, path, errors);
                break;
            case JsonValueKind.Object:
                CheckObject(schema, value, path, errors, depth);
                break;
            case JsonValueKind.Array:
                CheckArray(schema, value, path, errors, depth);
                break;
        }

        CheckCombinations(schema, value, path, errors, depth);
    }

    private static void CheckNumber(JsonElement schema, double number, string path, Dictionary<string, List<string>> errors)
    {
        if (Number(schema, "minimum") is { } min && number < min) Add(errors, path, $"{Name(path)} must be at least {Format(min)}.");
        if (Number(schema, "maximum") is { } max && number > max) Add(errors, path, $"{Name(path)} must be at most {Format(max)}.");
        if (Number(schema, "exclusiveMinimum") is { } xmin && number <= xmin) Add(errors, path, $"{Name(path)} must be greater than {Format(xmin)}.");
        if (Number(schema, "exclusiveMaximum") is { } xmax && number >= xmax) Add(errors, path, $"{Name(path)} must be less than {Format(xmax)}.");
    }

    private static void CheckString(JsonElement schema, string text, string path, Dictionary<string, List<string>> errors)
    {
        var length = text.EnumerateRunes().Count();
        if (Number(schema, "minLength") is { } min && length < min) Add(errors, path, $"{Name(path)} must be at least {Format(min)} characters long.");
        if (Number(schema, "maxLength") is { } max && length > max) Add(errors, path, $"{Name(path)} must be at most {Format(max)} characters long.");
        if (schema.TryGetProperty("pattern", out var pattern) && pattern.ValueKind == JsonValueKind.String)
        {
            try
            {
                if (!Regex.IsMatch(text, pattern.GetString()!, RegexOptions.None, TimeSpan.FromMilliseconds(100)))
                    Add(errors, path, $"{Name(path)} must match the pattern {pattern.GetString()}.");
            }
            catch (ArgumentException)
            {
                // A pattern .NET cannot parse is the tool's problem, not the caller's.
            }
            catch (RegexMatchTimeoutException)
            {
            }
        }
    }

    private static void CheckObject(JsonElement schema, JsonElement value, string path, Dictionary<string, List<string>> errors, int depth)
    {
        var properties = schema.TryGetProperty("properties", out var p) && p.ValueKind == JsonValueKind.Object ? p : default;
        if (schema.TryGetProperty("required", out var required) && required.ValueKind == JsonValueKind.Array)
        {
            foreach (var name in required.EnumerateArray().Where(r => r.ValueKind == JsonValueKind.String).Select(r => r.GetString()!))
            {
                if (!value.TryGetProperty(name, out _)) Add(errors, Join(path, name), $"{name} is required.");
            }
        }

        schema.TryGetProperty("additionalProperties", out var additional);
        foreach (var property in value.EnumerateObject())
        {
            var propertyPath = Join(path, property.Name);
            if (properties.ValueKind == JsonValueKind.Object && properties.TryGetProperty(property.Name, out var propertySchema))
                Check(propertySchema, property.Value, propertyPath, errors, depth + 1);
            else if (additional.ValueKind == JsonValueKind.False)
                Add(errors, propertyPath, $"{property.Name} is not a parameter of this tool.");
            else if (additional.ValueKind == JsonValueKind.Object)
                Check(additional, property.Value, propertyPath, errors, depth + 1);
        }
    }

    private static void CheckArray(JsonElement schema, JsonElement value, string path, Dictionary<string, List<string>> errors, int depth)
    {
        var count = value.GetArrayLength();
        if (Number(schema, "minItems") is { } min && count < min) Add(errors, path, $"{Name(path)} must have at least {Format(min)} items.");
        if (Number(schema, "maxItems") is { } max && count > max) Add(errors, path, $"{Name(path)} must have at most {Format(max)} items.");
        if (schema.TryGetProperty("items", out var items) && items.ValueKind is JsonValueKind.Object or JsonValueKind.False)
        {
            var i = 0;
            foreach (var item in value.EnumerateArray()) Check(items, item, $"{path}[{i++}]", errors, depth + 1);
        }
    }

    private static void CheckCombinations(JsonElement schema, JsonElement value, string path, Dictionary<string, List<string>> errors, int depth)
    {
        if (schema.TryGetProperty("allOf", out var all) && all.ValueKind == JsonValueKind.Array)
        {
            foreach (var branch in all.EnumerateArray()) Check(branch, value, path, errors, depth + 1);
        }
        foreach (var keyword in new[] { "anyOf", "oneOf" })
        {
            if (!schema.TryGetProperty(keyword, out var branches) || branches.ValueKind != JsonValueKind.Array) continue;
            // Accept when any branch accepts (oneOf's "exactly one" is not enforced: a lenient check never blocks a valid call).
            var matches = branches.EnumerateArray().Any(branch =>
            {
                var branchErrors = new Dictionary<string, List<string>>();
                Check(branch, value, path, branchErrors, depth + 1);
                return branchErrors.Count == 0;
            });
            if (!matches) Add(errors, path, $"{Name(path)} does not match any of the forms this tool accepts.");
        }
    }

    private static bool TypeMatches(JsonElement type, JsonElement value) => type.ValueKind switch
    {
        JsonValueKind.String => IsOfType(type.GetString()!, value),
        JsonValueKind.Array => type.EnumerateArray().Any(t => t.ValueKind == JsonValueKind.String && IsOfType(t.GetString()!, value)),
        _ => true,
    };

    private static bool IsOfType(string type, JsonElement value) => type switch
    {
        "object" => value.ValueKind == JsonValueKind.Object,
        "array" => value.ValueKind == JsonValueKind.Array,
        "string" => value.ValueKind == JsonValueKind.String,
        "number" => value.ValueKind == JsonValueKind.Number,
        // JSON Schema counts 5.0 as an integer.
        "integer" => value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out var number) && Math.Floor(number) == number,
        "boolean" => value.ValueKind is JsonValueKind.True or JsonValueKind.False,
        "null" => value.ValueKind == JsonValueKind.Null,
        _ => true,
    };

    private static string Describe(JsonElement type) => type.ValueKind == JsonValueKind.Array
        ? string.Join(" or ", type.EnumerateArray().Select(t => Article(t.GetString() ?? "")))
        : Article(type.GetString() ?? "");

    private static string Article(string type) => type switch
    {
        "object" or "array" or "integer" => "an " + type,
        "null" => "null",
        _ => "a " + type,
    };

    private static string KindOf(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => "missing",
    };

    private static double? Number(JsonElement schema, string keyword) =>
        schema.TryGetProperty(keyword, out var n) && n.ValueKind == JsonValueKind.Number ? n.GetDouble() : null;

    private static string Format(double number) => number.ToString(CultureInfo.InvariantCulture);

    private static string Join(string path, string name) => path.Length == 0 ? name : $"{path}.{name}";

    private static string Name(string path) => path.Length == 0 ? "The arguments" : path;

    private static void Add(Dictionary<string, List<string>> errors, string path, string message)
    {
        var key = path.Length == 0 ? RootField : path;
        if (!errors.TryGetValue(key, out var list)) errors[key] = list = [];
        list.Add(message);
    }
}
