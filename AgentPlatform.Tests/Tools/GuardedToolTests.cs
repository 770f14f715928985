using System.Diagnostics;
using System.Text.Json;
using AgentPlatform.Engine.Agents;
using AgentPlatform.Engine.Telemetry;
using AgentPlatform.Engine.Tools;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace AgentPlatform.Tests.Tools;

/// <summary>The wrapper every offered tool gets, on a catalog of its own (no platform needed).</summary>
public sealed class GuardedToolTests
{
    private static readonly ToolCaller Caller = new(Guid.NewGuid(), null, IsAdmin: false);

    private static ToolCatalog Catalog(TimeSpan callTimeout, params AIFunction[] tools)
    {
        var services = new ServiceCollection().BuildServiceProvider();
        var options = new FixedOptions<ToolOptions>(new ToolOptions { CallTimeout = callTimeout });
        var catalog = new ToolCatalog(options, services.GetRequiredService<IServiceScopeFactory>(), TimeProvider.System,
            NullLogger<ToolCatalog>.Instance);
        catalog.ReplaceSource("test", tools);
        return catalog;
    }

    private static AIFunction Offered(ToolCatalog catalog, string name) =>
        catalog.ToolsFor(Caller, new AgentDefinition { Name = "tester", Tools = [name] }).Cast<AIFunction>().Single();

    private static JsonElement AsJson(object? result) => JsonDocument.Parse(Assert.IsType<string>(result)).RootElement;

    [Fact]
    public async Task A_slow_tool_returns_a_timeout_error_to_the_model_at_its_time_limit()
    {
        var catalog = Catalog(TimeSpan.FromMilliseconds(300),
            AIFunctionFactory.Create(async (CancellationToken ct) => { await Task.Delay(TimeSpan.FromSeconds(30), ct); return "done"; }, "slow_tool"));
        using var log = ToolCallLog.Begin();
        var clock = Stopwatch.StartNew();

        var result = AsJson(await Offered(catalog, "slow_tool").InvokeAsync(new AIFunctionArguments()));

        Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(5));
        Assert.Equal("timeout", result.GetProperty("outcome").GetString());
        Assert.Contains("did not finish within 0.3 s", result.GetProperty("error").GetString());
        var call = Assert.Single(log.Log.Calls);
        Assert.Equal(("slow_tool", "timeout"), (call.Tool, call.Outcome));
    }

    [Fact]
    public async Task A_tool_that_ignores_cancellation_still_ends_at_the_time_limit()
    {
        var catalog = Catalog(TimeSpan.FromMilliseconds(300),
            AIFunctionFactory.Create(async () => { await Task.Delay(TimeSpan.FromSeconds(5)); return "late"; }, "stubborn_tool"));
        var clock = Stopwatch.StartNew();

        var result = AsJson(await Offered(catalog, "stubborn_tool").InvokeAsync(new AIFunctionArguments()));

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(3), $"took {clock.Elapsed}");
        Assert.Equal("timeout", result.GetProperty("outcome").GetString());
    }

    [Fact]
    public async Task An_unexpected_exception_becomes_an_error_result_without_its_internals()
    {
        var catalog = Catalog(TimeSpan.FromSeconds(5),
            AIFunctionFactory.Create(string () => throw new InvalidOperationException("Host=db;Password=secret"), "leaky_tool"));
        using var log = ToolCallLog.Begin();

        var result = AsJson(await Offered(catalog, "leaky_tool").InvokeAsync(new AIFunctionArguments()));

        Assert.Equal("error", result.GetProperty("outcome").GetString());
        Assert.DoesNotContain("secret", result.GetRawText());
        Assert.Equal("error", Assert.Single(log.Log.Calls).Outcome);
    }

    [Fact]
    public async Task Invalid_arguments_never_reach_the_tool_and_the_model_sees_the_field_errors()
    {
        var calls = 0;
        var catalog = Catalog(TimeSpan.FromSeconds(5),
            AIFunctionFactory.Create((int count) => ++calls, "counting_tool"));

        var result = AsJson(await Offered(catalog, "counting_tool").InvokeAsync(new AIFunctionArguments { ["count"] = "three" }));

        Assert.Equal(0, calls);
        Assert.Equal("invalid_arguments", result.GetProperty("outcome").GetString());
        Assert.StartsWith("count: Value is \"string\" but should be \"integer\"", result.GetProperty("fields").GetProperty("count")[0].GetString());
    }

    [Fact]
    public async Task Each_call_is_an_execute_tool_span_with_name_duration_and_outcome()
    {
        var catalog = Catalog(TimeSpan.FromSeconds(5), AIFunctionFactory.Create(() => 42, "span_tool_" + Guid.NewGuid().ToString("N")[..8]));
        var tool = catalog.All.Single(t => t.Source == "test").Name;
        var spans = new List<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == PlatformTelemetry.Name,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity => { if (activity.DisplayName == $"execute_tool {tool}") lock (spans) spans.Add(activity); },
        };
        ActivitySource.AddActivityListener(listener);

        await Offered(catalog, tool).InvokeAsync(new AIFunctionArguments());

        var span = Assert.Single(spans);
        Assert.Equal(tool, span.GetTagItem("gen_ai.tool.name"));
        Assert.Equal("ok", span.GetTagItem("tool.outcome"));
        Assert.NotNull(span.GetTagItem("tool.duration_ms"));
    }
}
