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
        Assert.Equal("limit must be at most 50.", errors["limit"].Single());
        Assert.StartsWith("status must be one of: \"queued\", \"completed\"", errors["status"].Single());
        Assert.Equal("ratio must be greater than 0.", errors["ratio"].Single());
        Assert.Equal("tags must have at most 2 items.", errors["tags"].Single());
        Assert.Equal("tags[1] must be a string, not a number.", errors["tags[1]"].Single());
        Assert.Equal("filter.name must be at least 2 characters long.", errors["filter.name"].Single());
        Assert.Equal("flag must be a boolean, not a string.", errors["flag"].Single());
        Assert.Equal("extra is not a parameter of this tool.", errors["extra"].Single());
    }

    [Theory]
    [InlineData("""{"expression":"1","limit":1.5}""", "limit", "must be an integer")]
    [InlineData("""{"expression":"1","limit":"5"}""", "limit", "must be an integer, not a string")]
    [InlineData("""{"expression":"12345678901"}""", "expression", "at most 10 characters")]
    [InlineData("""[1, 2]""", "arguments", "must be an object")]
    [InlineData("""{"expression":"1","filter":{}}""", "filter.name", "filter.name is required")]
    public void Types_and_limits_are_checked(string arguments, string field, string message)
    {
        var errors = Validate(arguments);
        Assert.Contains(message, string.Join(" ", errors[field]));
    }

    [Fact]
    public void Any_of_accepts_a_value_matching_one_branch()
    {
        var schema = JsonDocument.Parse("""{"type":"object","properties":{"v":{"anyOf":[{"type":"string"},{"type":"integer","minimum":3}]}}}""").RootElement;

        Assert.Empty(ToolArgumentValidator.Validate(schema, JsonDocument.Parse("""{"v":"x"}""").RootElement));
        Assert.Empty(ToolArgumentValidator.Validate(schema, JsonDocument.Parse("""{"v":4}""").RootElement));
        var errors = ToolArgumentValidator.Validate(schema, JsonDocument.Parse("""{"v":1}""").RootElement);
        // One sentence for the field, not one per branch that did not fit.
        Assert.Equal("v does not match any of the forms this tool accepts.", Assert.Single(errors["v"]));
        Assert.Single(errors);
    }

    [Fact]
    public void One_of_rejects_a_value_matching_two_branches()
    {
        var schema = JsonDocument.Parse("""{"type":"object","properties":{"v":{"oneOf":[{"type":"integer"},{"type":"number"}]}}}""").RootElement;

        Assert.Empty(ToolArgumentValidator.Validate(schema, JsonDocument.Parse("""{"v":1.5}""").RootElement));
        Assert.Contains("more than one", Assert.Single(ToolArgumentValidator.Validate(schema, JsonDocument.Parse("""{"v":2}""").RootElement)["v"]));
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
        Assert.Equal("window.days must be at most 7.", Assert.Single(errors["window.days"]));
        Assert.Equal("window.hours is not a known field.", Assert.Single(errors["window.hours"]));
        Assert.Contains("at must be a date-time", Assert.Single(errors["at"]));
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
        Assert.Equal("limit must be at most 50.", Assert.Single(errors["limit"]));
        Assert.StartsWith("status must be one of: \"queued\"", Assert.Single(errors["status"]));
        Assert.Empty(Check(BuiltInTools.MyTasksName, """{"status":null,"limit":5}""")); // [AllowedValues(..., null)] lists no null in enum
        Assert.Equal("timezone must be a string or null, not a number.", Assert.Single(Check(BuiltInTools.CurrentTimeName, """{"timezone":5}""")["timezone"]));
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
    public void A_key_without_a_list_may_use_every_tool_and_the_admin_always_may()
    {
        Assert.True(ToolAllowList.KeyAllows(new ToolCaller(Guid.NewGuid(), null, false), "calculator"));
        Assert.False(ToolAllowList.KeyAllows(new ToolCaller(Guid.NewGuid(), [], false), "calculator"));
        Assert.True(ToolAllowList.KeyAllows(new ToolCaller(Guid.Empty, [], true), "calculator"));
    }

    [Fact]
    public void Mcp_tool_names_are_prefixed_and_fit_what_openai_accepts()
    {
        Assert.Equal("files_read", McpToolSource.PrefixedName("files", "read"));
        Assert.Equal("files_read_file_v2", McpToolSource.PrefixedName("files", "read.file v2"));
        Assert.Equal(64, McpToolSource.PrefixedName("server", new string('x', 100)).Length);
    }
}
