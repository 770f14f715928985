using System.ClientModel;
using System.Diagnostics;
using System.Text.Json.Nodes;
using AgentPlatform.Engine.Agents;
using AgentPlatform.Engine.Data;
using AgentPlatform.Engine.Tasks;
using AgentPlatform.Engine.Telemetry;
using AgentPlatform.Engine.Tools;
using AgentPlatform.Tests.Infrastructure;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;
using TaskStatus = AgentPlatform.Engine.Tasks.TaskStatus;

namespace AgentPlatform.Tests.Tools;

/// <summary>
/// The catalog's tools in a Microsoft.Extensions.AI function-invocation loop against the OpenAI-protocol
/// double — the pipeline the task runner uses, built here so the tools are tested on their own.
/// </summary>
[Collection(PlatformCollection.Name)]
public sealed class ToolCallingTests(PlatformFixture platform)
{
    private IToolCatalog Catalog => platform.Api.Services.GetRequiredService<IToolCatalog>();

    private IChatClient Model() =>
        new ChatClientBuilder(new OpenAIClient(new ApiKeyCredential("test-provider-key"), new OpenAIClientOptions { Endpoint = new Uri(platform.Llm.BaseUrl) })
                .GetChatClient(PlatformFixture.Model).AsIChatClient())
            .UseFunctionInvocation()
            .Build();

    private static ToolCaller AnyKey(string[]? allowedTools = null) => new(Guid.NewGuid(), allowedTools, IsAdmin: false);

    private static AgentDefinition Agent(params string[] tools) => new() { Name = "tester", Tools = tools };

    /// <summary>The requests the double received for a marker (not its answers), in order.</summary>
    private List<LlmCall> Requests(string marker) => platform.Llm.CallsFor(marker).Where(c => !c.Completed).ToList();

    private static JsonObject ToolMessage(LlmCall call) =>
        call.Messages!.Select(m => m!.AsObject()).Single(m => m["role"]!.GetValue<string>() == "tool");

    private static string ContentOf(JsonObject message) => message["content"] switch
    {
        JsonValue text => text.GetValue<string>(),
        JsonArray parts => string.Concat(parts.Select(p => p?["text"]?.GetValue<string>())),
        _ => "",
    };

    private static string[] OfferedNames(LlmCall call) =>
        call.Tools?.Select(t => t!["function"]!["name"]!.GetValue<string>()).Order().ToArray() ?? [];

    [Fact]
    public async Task A_tool_call_round_trip_feeds_the_result_back_to_the_model_and_is_recorded()
    {
        var marker = "roundtrip-" + Guid.NewGuid().ToString("N")[..8];
        platform.Llm.Script(marker,
            new LlmStep(ToolCalls: [new ToolCallStep("calculator", """{"expression":"2*(3+4)"}""")]),
            new LlmStep(Content: "The answer is 14."));
        var spans = new List<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == PlatformTelemetry.Name,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity => { if (activity.DisplayName == "execute_tool calculator") lock (spans) spans.Add(activity); },
        };
        ActivitySource.AddActivityListener(listener);
        using var log = ToolCallLog.Begin();

        var response = await Model().GetResponseAsync([new ChatMessage(ChatRole.User, $"{marker}: what is 2*(3+4)?")],
            new ChatOptions { Tools = Catalog.ToolsFor(AnyKey(), Agent("calculator", "current_time", "my_tasks")) });

        Assert.Equal("The answer is 14.", response.Text);
        var requests = Requests(marker);
        Assert.Equal(2, requests.Count);
        Assert.Equal(new[] { "calculator", "current_time", "my_tasks" }, OfferedNames(requests[0]));
        var toolMessage = ToolMessage(requests[1]);
        Assert.Equal(14, JsonNode.Parse(ContentOf(toolMessage))!["result"]!.GetValue<decimal>());
        Assert.DoesNotContain("\n", ContentOf(toolMessage)); // compact JSON: indentation would cost tokens

        var call = Assert.Single(log.Log.Calls);
        Assert.Equal(("calculator", "ok"), (call.Tool, call.Outcome));
        Assert.Contains("2*(3+4)", call.Arguments);
        Assert.Contains("14", call.Result);

        var callId = toolMessage["tool_call_id"]!.GetValue<string>();
        var span = Assert.Single(spans, s => (string?)s.GetTagItem("gen_ai.tool.call.id") == callId);
        Assert.Equal("ok", span.GetTagItem("tool.outcome"));
        Assert.Equal("calculator", span.GetTagItem("gen_ai.tool.name"));
    }

    [Fact]
    public async Task A_tool_outside_the_allow_lists_is_never_offered_to_the_model()
    {
        var marker = "notoffered-" + Guid.NewGuid().ToString("N")[..8];
        platform.Llm.Script(marker,
            new LlmStep(ToolCalls: [new ToolCallStep("calculator", """{"expression":"1+1"}""")]),
            new LlmStep(Content: "I could not calculate."));
        using var log = ToolCallLog.Begin();

        // The key allows calculator and current_time, the agent current_time and my_tasks: only current_time is offered.
        var tools = Catalog.ToolsFor(AnyKey(["calculator", "current_time"]), Agent("current_time", "my_tasks"));
        var response = await Model().GetResponseAsync([new ChatMessage(ChatRole.User, $"{marker}: add 1 and 1")], new ChatOptions { Tools = tools });

        Assert.Equal(new[] { "current_time" }, tools.Select(t => t.Name).ToArray());
        var requests = Requests(marker);
        Assert.Equal(new[] { "current_time" }, OfferedNames(requests[0]));
        // A model that calls it anyway gets "not found" from the invocation loop; the tool never runs.
        Assert.Contains("not found", ContentOf(ToolMessage(requests[1])));
        Assert.Empty(log.Log.Calls);
        Assert.Equal("I could not calculate.", response.Text);
    }

    [Fact]
    public void An_agent_without_tools_is_offered_none()
    {
        Assert.Empty(Catalog.ToolsFor(AnyKey(), Agent()));
        Assert.Empty(Catalog.ToolsFor(AnyKey([]), Agent("calculator")));
    }

    [Fact]
    public async Task A_slow_mcp_tool_in_a_model_run_yields_a_timeout_the_model_sees_and_the_run_goes_on()
    {
        await ToolsApiTests.WaitForMcpToolsAsync(platform);
        var marker = "slowtool-" + Guid.NewGuid().ToString("N")[..8];
        platform.Llm.Script(marker,
            new LlmStep(ToolCalls: [new ToolCallStep("testmcp_sleep", """{"seconds":20}""")]),
            new LlmStep(Content: "The tool was too slow."));
        using var log = ToolCallLog.Begin();
        var clock = Stopwatch.StartNew();

        var response = await Model().GetResponseAsync([new ChatMessage(ChatRole.User, $"{marker}: wait a while")],
            new ChatOptions { Tools = Catalog.ToolsFor(AnyKey(), Agent("testmcp_*")) });

        Assert.Equal("The tool was too slow.", response.Text);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"took {clock.Elapsed}");
        var toolResult = JsonNode.Parse(ContentOf(ToolMessage(Requests(marker)[1])))!;
        Assert.Equal("timeout", toolResult["outcome"]!.GetValue<string>());
        Assert.Contains("did not finish", toolResult["error"]!.GetValue<string>());
        var call = Assert.Single(log.Log.Calls);
        Assert.Equal(("testmcp_sleep", "timeout"), (call.Tool, call.Outcome));
    }

    [Fact]
    public async Task Invalid_arguments_from_the_model_come_back_to_it_as_field_errors()
    {
        var marker = "badargs-" + Guid.NewGuid().ToString("N")[..8];
        platform.Llm.Script(marker,
            new LlmStep(ToolCalls: [new ToolCallStep("calculator", """{"expr":"1+1"}""")]),
            new LlmStep(Content: "Let me fix that."));
        using var log = ToolCallLog.Begin();

        await Model().GetResponseAsync([new ChatMessage(ChatRole.User, $"{marker}: add")],
            new ChatOptions { Tools = Catalog.ToolsFor(AnyKey(), Agent("calculator")) });

        var content = ContentOf(ToolMessage(Requests(marker)[1]));
        Assert.Contains("invalid_arguments", content);
        Assert.Contains("expression is required", content);
        Assert.Equal("invalid_arguments", Assert.Single(log.Log.Calls).Outcome);
    }

    [Fact]
    public async Task A_queued_task_whose_key_row_is_gone_is_offered_no_tools()
    {
        var (_, liveKey) = await ToolsApiTests.CreateKeyAsync(platform, null);
        var offered = new Dictionary<string, string[]>();
        foreach (var (name, keyId) in new[] { ("live", liveKey), ("gone", Guid.NewGuid()) })
        {
            var marker = $"keyrow-{name}-" + Guid.NewGuid().ToString("N")[..8];
            platform.Llm.Script(marker, new LlmStep(Content: "done"));
            var taskId = Guid.CreateVersion7();
            using var scope = platform.Api.Services.CreateScope();
            var db = scope.ServiceProvider.GetRequiredService<AgentDbContext>();
            db.Tasks.Add(new AgentTask
            {
                Id = taskId, ApiKeyId = keyId, Agent = "general", Input = $"{marker}: what is 2+2?",
                Status = TaskStatus.Queued, CreatedAt = DateTimeOffset.UtcNow,
            });
            await db.SaveChangesAsync();

            var task = await scope.ServiceProvider.GetRequiredService<TaskRunner>().RunAsync(taskId, CancellationOutcome.Cancel, CancellationToken.None);

            Assert.Equal(TaskStatus.Completed, task!.Status);
            offered[name] = OfferedNames(Assert.Single(Requests(marker)));
        }

        // The general agent names calculator, current_time and my_tasks; a key without a list leaves them to it.
        Assert.Equal(new[] { "calculator", "current_time", "my_tasks" }, offered["live"]);
        Assert.Empty(offered["gone"]);
    }
}
