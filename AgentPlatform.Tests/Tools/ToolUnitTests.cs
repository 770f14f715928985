using System.Text.Json;
using AgentPlatform.Engine.Tools;

namespace AgentPlatform.Tests.Tools;

public sealed class CalculatorTests
{
    [Theory]
    [InlineData("2*(3+4)", "14")]
    [InlineData("1 + 2 * 3", "7")]
    [InlineData("(1 + 2) * 3", "9")]
    [InlineData("0.1 + 0.2", "0.3")]
    [InlineData("10 / 4", "2.5")]
    [InlineData("10 % 4", "2")]
    [InlineData("2 ^ 10", "1024")]
    [InlineData("2 ^ 3 ^ 2", "512")]
    [InlineData("-2 ^ 2", "-4")]
    [InlineData("2 ^ -1", "0.5")]
    [InlineData("--3", "3")]
    [InlineData("7 - 2 - 1", "4")]
    [InlineData("  .5 * 4 ", "2")]
    [InlineData("4 ^ 0.5", "2")]
    public void The_calculator_follows_arithmetic_precedence(string expression, string expected)
    {
        Assert.Equal(decimal.Parse(expected, System.Globalization.CultureInfo.InvariantCulture), Calculator.Evaluate(expression));
    }

    [Fact]
    public void Whole_results_have_no_trailing_zeros()
    {
        Assert.Equal("14", Calculator.Evaluate("7.0 * 2.0").ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    [Theory]
    [InlineData("1 / 0", "Division by zero")]
    [InlineData("1 +", "ends where a number")]
    [InlineData("(1 + 2", "Missing ')'")]
    [InlineData("2 * x", "Unexpected 'x' at position 5")]
    [InlineData("1.2.3", "not a number")]
    [InlineData("", "empty")]
    [InlineData("10 ^ 100", "too large")]
    [InlineData("(-8) ^ 0.5", "not a real number")]
    [InlineData("System.IO.File.Delete(\"x\")", "Unexpected 'S'")]
    public void Bad_expressions_fail_with_a_readable_message(string expression, string message)
    {
        var error = Assert.Throws<ToolFailedException>(() => Calculator.Evaluate(expression));
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void Deep_nesting_is_refused_instead_of_overflowing_the_stack()
    {
        var error = Assert.Throws<ToolFailedException>(() => Calculator.Evaluate(new string('(', 200) + "1" + new string(')', 200)));
        Assert.Contains("nests deeper", error.Message);
    }
}

public sealed class ToolArgumentValidatorTests
{
    private static readonly JsonElement Schema = JsonDocument.Parse("""
        {
          "type": "object",
          "properties": {
            "expression": { "type": "string", "maxLength": 10 },
            "limit": { "type": "integer", "minimum": 1, "maximum": 50 },
            "status": { "type": ["string", "null"], "enum": ["queued", "completed"] },
            "ratio": { "type": "number", "exclusiveMinimum": 0 },
            "tags": { "type": "array", "items": { "type": "string" }, "maxItems": 2 },
            "filter": { "type": "object", "properties": { "name": { "type": "string", "minLength": 2 } }, "required": ["name"] },
            "flag": { "type": "boolean" }
          },
          "required": ["expression"],
          "additionalProperties": false
        }
        """).RootElement;

    private static IReadOnlyDictionary<string, string[]> Validate(string arguments) =>
        ToolArgumentValidator.Validate(Schema, JsonDocument.Parse(arguments).RootElement);

    /// <summary>The field's single message is the library's, prefixed with the field, and says each of <paramref name="parts"/>.</summary>
    private static void Says(IReadOnlyDictionary<string, string[]> errors, string field, params string[] parts)
    {
        var message = Assert.Single(errors[field]);
        Assert.StartsWith(field + ": ", message);
        foreach (var part in parts) Assert.Contains(part, message);
    }

    [Fact]
    public void Valid_arguments_have_no_errors()
    {
        Assert.Empty(Validate("""{"expression":"1+1","limit":5,"status":"queued","ratio":0.5,"tags":["a"],"filter":{"name":"ab"},"flag":true}"""));
        Assert.Empty(Validate("""{"expression":"1+1","status":null,"limit":5.0}"""));
    }

    [Fact]
    public void Each_broken_rule_names_its_field()
    {
        var errors = Validate("""
            {"limit":500,"status":"bogus","ratio":0,"tags":["a",2,"c"],"filter":{"name":"a"},"flag":"yes","extra":1}
            """);

        Assert.Equal(["expression", "extra", "filter.name", "flag", "limit", "ratio", "status", "tags", "tags[1]"], errors.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("expression is required.", errors["expression"].Single());
        Says(errors, "limit", "500", "at most 50");
        Says(errors, "status", "enum");
        Says(errors, "ratio", "greater than 0");
        Says(errors, "tags", "at most 2 items");
        Says(errors, "tags[1]", "\"integer\"", "should be \"string\"");
        Says(errors, "filter.name", "at least 2 characters");
        Says(errors, "flag", "\"string\"", "should be \"boolean\"");
        Assert.Equal("extra is not a parameter of this tool.", errors["extra"].Single());
    }

    [Theory]
    [InlineData("""{"expression":"1","limit":1.5}""", "limit", "limit: Value is \"number\" but should be \"integer\"")]
    [InlineData("""{"expression":"1","limit":"5"}""", "limit", "limit: Value is \"string\" but should be \"integer\"")]
    [InlineData("""{"expression":"12345678901"}""", "expression", "expression: Value should be at most 10 characters")]
    [InlineData("""[1, 2]""", "arguments", "The arguments must be an object, not an array.")]
    [InlineData("""5""", "arguments", "The arguments must be an object, not a number.")]
    [InlineData("""{"expression":"1","filter":{}}""", "filter.name", "filter.name is required.")]
    public void Types_and_limits_are_checked(string arguments, string field, string message)
    {
        var errors = Validate(arguments);
        Assert.Equal(message, Assert.Single(errors[field]));
    }

    [Fact]
    public void Any_of_accepts_a_value_matching_one_branch()
    {
        var schema = JsonDocument.Parse("""{"type":"object","properties":{"v":{"anyOf":[{"type":"string"},{"type":"integer","minimum":3}]}}}""").RootElement;

        Assert.Empty(ToolArgumentValidator.Validate(schema, JsonDocument.Parse("""{"v":"x"}""").RootElement));
        Assert.Empty(ToolArgumentValidator.Validate(schema, JsonDocument.Parse("""{"v":4}""").RootElement));
        var errors = ToolArgumentValidator.Validate(schema, JsonDocument.Parse("""{"v":1}""").RootElement);
        // No branch fits: each branch's reason, under the field.
        Assert.Equal("v", Assert.Single(errors).Key);
        Assert.Collection(errors["v"], m => Assert.Contains("should be \"string\"", m), m => Assert.Contains("at least 3", m));
    }

    [Fact]
    public void One_of_rejects_a_value_matching_two_branches()
    {
        var schema = JsonDocument.Parse("""{"type":"object","properties":{"v":{"oneOf":[{"type":"integer"},{"type":"number"}]}}}""").RootElement;

        Assert.Empty(ToolArgumentValidator.Validate(schema, JsonDocument.Parse("""{"v":1.5}""").RootElement));
        Says(ToolArgumentValidator.Validate(schema, JsonDocument.Parse("""{"v":2}""").RootElement), "v", "Expected 1", "found 2");
    }

    [Fact]
    public void A_value_matching_a_not_schema_is_rejected()
    {
        var schema = JsonDocument.Parse("""{"type":"object","properties":{"v":{"not":{"type":"string"}}}}""").RootElement;

        Assert.Empty(ToolArgumentValidator.Validate(schema, JsonDocument.Parse("""{"v":1}""").RootElement));
        Says(ToolArgumentValidator.Validate(schema, JsonDocument.Parse("""{"v":"x"}""").RootElement), "v", "does not match");
    }

    [Fact]
    public void Only_failures_that_decided_the_result_are_reported()
    {
        var schema = JsonDocument.Parse("""
            {"type":"object","properties":{
              "v":{"anyOf":[{"type":"string"},{"type":"integer"}],"maxLength":2},
              "list":{"type":"array","contains":{"type":"integer"}}}}
            """).RootElement;

        var errors = ToolArgumentValidator.Validate(schema, JsonDocument.Parse("""{"v":"abc","list":["a","b"]}""").RootElement);

        // Not the anyOf branch that "abc" did not fit, nor each item that is not the integer `contains` looks for.
        Assert.Equal(["list", "v"], errors.Keys.Order(StringComparer.Ordinal));
        Says(errors, "v", "at most 2 characters");
        Says(errors, "list", "at least 1");
    }

    [Fact]
    public void Refs_into_defs_and_formats_are_checked()
    {
        var schema = JsonDocument.Parse("""
            {
              "type": "object",
              "properties": {
                "window": { "$ref": "#/$defs/window" },
                "at": { "type": "string", "format": "date-time" }
              },
              "$defs": {
                "window": { "type": "object", "properties": { "days": { "type": "integer", "maximum": 7 } }, "required": ["days"], "additionalProperties": false }
              }
            }
            """).RootElement;
        IReadOnlyDictionary<string, string[]> Check(string arguments) => ToolArgumentValidator.Validate(schema, JsonDocument.Parse(arguments).RootElement);

        Assert.Empty(Check("""{"window":{"days":3},"at":"2025-01-31T09:30:00Z"}"""));

        var errors = Check("""{"window":{"days":9,"hours":1},"at":"tomorrow"}""");
        Says(errors, "window.days", "at most 7");
        Assert.Equal("window.hours is not a known field.", Assert.Single(errors["window.hours"]));
        Says(errors, "at", "date-time");
        Assert.Equal("window.days is required.", Assert.Single(Check("""{"window":{}}""")["window.days"]));
    }

    [Fact]
    public void Pointers_become_the_field_paths_the_model_wrote()
    {
        var schema = JsonDocument.Parse("""
            {"type":"object","properties":{
              "rows":{"type":"array","items":{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}},
              "pair":{"type":"array","prefixItems":[{"type":"string"}],"items":{"type":"integer"}},
              "a/b":{"type":"integer"}}}
            """).RootElement;

        var errors = ToolArgumentValidator.Validate(schema, JsonDocument.Parse("""{"rows":[{"name":"x"},{"name":3},{}],"pair":["a",1,"x"],"a/b":"x"}""").RootElement);

        Assert.Equal(["a/b", "pair[2]", "rows[1].name", "rows[2].name"], errors.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("rows[2].name is required.", Assert.Single(errors["rows[2].name"]));
        Says(errors, "pair[2]", "should be \"integer\"");
    }

    [Fact]
    public void Null_is_accepted_for_a_nullable_enum_but_other_values_are_not()
    {
        var schema = JsonDocument.Parse("""{"type":"object","properties":{"s":{"anyOf":[{"type":["string","null"],"enum":["a"]},{"type":"integer"}]}}}""").RootElement;

        Assert.Empty(ToolArgumentValidator.Validate(schema, JsonDocument.Parse("""{"s":null}""").RootElement));
        Assert.True(ToolArgumentValidator.Validate(schema, JsonDocument.Parse("""{"s":"b"}""").RootElement).ContainsKey("s"));
    }

    [Fact]
    public void The_built_in_tools_generated_schemas_compile_and_are_checked()
    {
        var tools = new BuiltInTools(null!, TimeProvider.System).Create().ToDictionary(t => t.Name);
        IReadOnlyDictionary<string, string[]> Check(string tool, string arguments) =>
            ToolArgumentValidator.Validate(tools[tool].JsonSchema, JsonDocument.Parse(arguments).RootElement);

        Assert.Equal("expression is required.", Assert.Single(Check(BuiltInTools.CalculatorName, "{}")["expression"]));
        var errors = Check(BuiltInTools.MyTasksName, """{"limit":500,"status":"bogus"}""");
        Says(errors, "limit", "at most 50");
        Says(errors, "status", "enum");
        Assert.Empty(Check(BuiltInTools.MyTasksName, """{"status":null,"limit":5}""")); // [AllowedValues(..., null)] lists no null in enum
        Says(Check(BuiltInTools.CurrentTimeName, """{"timezone":5}"""), "timezone", "\"integer\"", "should be \"string, null\"");
    }

    [Fact]
    public void A_schema_the_library_cannot_compile_is_left_to_the_tool()
    {
        var schema = JsonDocument.Parse("""{"type":"objekt"}""").RootElement;

        Assert.Empty(ToolArgumentValidator.Validate(schema, JsonDocument.Parse("""{"anything":1}""").RootElement));
    }
}

public sealed class ToolAllowListTests
{
    [Theory]
    [InlineData(new[] { "calculator" }, "calculator", true)]
    [InlineData(new[] { "calculator" }, "current_time", false)]
    [InlineData(new[] { "testmcp_*" }, "testmcp_echo", true)]
    [InlineData(new[] { "testmcp_*" }, "testmcp", false)]
    [InlineData(new[] { "*" }, "anything", true)]
    [InlineData(new string[0], "calculator", false)]
    public void Names_match_exactly_or_by_a_trailing_star(string[] patterns, string tool, bool allowed)
    {
        Assert.Equal(allowed, ToolAllowList.Allows(patterns, tool));
    }

    [Fact]
    public void A_key_without_a_list_leaves_the_choice_to_the_agent_and_the_admin_always_may()
    {
        Assert.True(ToolAllowList.KeyAllows(new ToolCaller(Guid.NewGuid(), null, false), "calculator"));
        Assert.True(ToolAllowList.KeyAllows(new ToolCaller(Guid.NewGuid(), null, false), "github_search"));
        Assert.False(ToolAllowList.KeyAllows(new ToolCaller(Guid.NewGuid(), [], false), "calculator"));
        Assert.True(ToolAllowList.KeyAllows(new ToolCaller(Guid.Empty, [], true), "calculator"));
    }

    [Theory]
    [InlineData(null, "calculator", "builtin", true)]
    [InlineData(null, "github_search", "mcp:github", false)]
    [InlineData(new[] { "github_*" }, "github_search", "mcp:github", true)]
    [InlineData(new[] { "*" }, "github_search", "mcp:github", true)]
    [InlineData(new[] { "calculator" }, "current_time", "builtin", false)]
    [InlineData(new string[0], "calculator", "builtin", false)]
    [InlineData(new string[0], "github_search", "mcp:github", false)]
    public void Direct_calls_of_agent_private_tools_need_an_explicit_grant(string[]? allowed, string tool, string source, bool may)
    {
        Assert.Equal(may, ToolAllowList.KeyMayCallDirectly(new ToolCaller(Guid.NewGuid(), allowed, false), tool, source));
        Assert.True(ToolAllowList.KeyMayCallDirectly(new ToolCaller(Guid.Empty, [], true), tool, source));
    }

    [Fact]
    public void Mcp_tool_names_are_prefixed_and_fit_what_openai_accepts()
    {
        Assert.Equal("files_read", McpToolSource.PrefixedName("files", "read"));
        Assert.Equal("files_read_file_v2", McpToolSource.PrefixedName("files", "read.file v2"));
        Assert.Equal(64, McpToolSource.PrefixedName("server", new string('x', 100)).Length);
    }
}
