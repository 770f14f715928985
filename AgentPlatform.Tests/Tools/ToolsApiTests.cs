using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using AgentPlatform.Engine.Tools;
using AgentPlatform.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace AgentPlatform.Tests.Tools;

[Collection(PlatformCollection.Name)]
public sealed class ToolsApiTests(PlatformFixture platform)
{
    /// <summary>A client key with a tool allow-list (null: no list — the built-ins directly, whatever its agents offer).</summary>
    internal static async Task<(string Key, Guid Id)> CreateKeyAsync(PlatformFixture platform, string[]? allowedTools)
    {
        var response = await platform.Client(PlatformFixture.AdminKey).PostAsJsonAsync("/admin/keys",
            new { name = "tools-" + Guid.NewGuid().ToString("N")[..6], tier = "enterprise", allowed_tools = allowedTools });
        response.EnsureSuccessStatusCode();
        var created = await response.JsonAsync();
        return (created["key"]!.GetValue<string>(), Guid.Parse(created["id"]!.GetValue<string>()));
    }

    /// <summary>The MCP server connects in the background after start-up; wait until its tools are in the catalog.</summary>
    internal static Task WaitForMcpToolsAsync(PlatformFixture platform) =>
        HttpExtensions.WaitUntilAsync(
            () => Task.FromResult(platform.Api.Services.GetRequiredService<IToolCatalog>().All.Any(t => t.Name == "testmcp_echo")),
            seconds: 60, what: "the test MCP server's tools");

    private static Task<HttpResponseMessage> InvokeAsync(HttpClient client, string tool, string argumentsJson) =>
        client.PostAsync($"/agent/tools/{tool}", new StringContent(argumentsJson, Encoding.UTF8, "application/json"));

    [Fact]
    public async Task The_tool_list_shows_the_builtins_and_the_mcp_servers_tools_under_its_prefix()
    {
        await WaitForMcpToolsAsync(platform);
        var client = platform.Client((await CreateKeyAsync(platform, ["*"])).Key);

        var tools = (await client.GetFromJsonAsync<JsonArray>("/agent/tools"))!.Select(t => t!.AsObject()).ToList();

        var names = tools.Select(t => t["name"]!.GetValue<string>()).ToList();
        Assert.Subset(names.ToHashSet(), new HashSet<string> { "calculator", "current_time", "my_tasks", "testmcp_echo", "testmcp_sleep", "testmcp_fail" });
        var echo = tools.Single(t => t["name"]!.GetValue<string>() == "testmcp_echo");
        Assert.Equal("mcp:testmcp", echo["source"]!.GetValue<string>());
        Assert.Equal("string", echo["parameters"]!["properties"]!["text"]!["type"]!.GetValue<string>());
        Assert.Equal("builtin", tools.Single(t => t["name"]!.GetValue<string>() == "calculator")["source"]!.GetValue<string>());
    }

    [Fact]
    public async Task An_mcp_servers_tool_is_called_through_the_api()
    {
        await WaitForMcpToolsAsync(platform);
        var client = platform.Client((await CreateKeyAsync(platform, ["testmcp_*"])).Key);

        var response = await InvokeAsync(client, "testmcp_echo", """{"text":"hello from the test"}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.JsonAsync();
        Assert.Equal("testmcp_echo", body["tool"]!.GetValue<string>());
        Assert.Equal("ok", body["outcome"]!.GetValue<string>());
        Assert.Equal("hello from the test", body["result"]!.GetValue<string>());
        Assert.True(body["duration_ms"]!.GetValue<long>() >= 0);
    }

    [Fact]
    public async Task A_key_without_the_tool_gets_403_and_does_not_see_it_listed()
    {
        await WaitForMcpToolsAsync(platform);
        var client = platform.Client((await CreateKeyAsync(platform, ["calculator", "testmcp_e*"])).Key);

        var refused = await InvokeAsync(client, "current_time", "{}");
        var refusedMcp = await InvokeAsync(client, "testmcp_sleep", """{"seconds":0}""");
        var allowed = await InvokeAsync(client, "calculator", """{"expression":"1+1"}""");
        var listed = (await client.GetFromJsonAsync<JsonArray>("/agent/tools"))!.Select(t => t!["name"]!.GetValue<string>()).ToList();

        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Equal("application/problem+json", refused.Content.Headers.ContentType!.MediaType);
        var problem = await refused.JsonAsync();
        Assert.Equal("current_time", problem["tool"]!.GetValue<string>());
        Assert.Contains("current_time", problem["detail"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.Forbidden, refusedMcp.StatusCode);
        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        Assert.Equal(new[] { "calculator", "testmcp_echo" }, listed.Order().ToArray());
    }

    [Fact]
    public async Task A_key_without_a_tool_list_may_call_the_builtins_directly_but_no_agent_private_mcp_tool()
    {
        await WaitForMcpToolsAsync(platform);
        var client = platform.Client((await CreateKeyAsync(platform, null)).Key);

        var builtin = await InvokeAsync(client, "calculator", """{"expression":"1+1"}""");
        var mcp = await InvokeAsync(client, "testmcp_echo", """{"text":"should not run"}""");
        var listed = (await client.GetFromJsonAsync<JsonArray>("/agent/tools"))!.Select(t => t!["name"]!.GetValue<string>()).ToList();

        Assert.Equal(HttpStatusCode.OK, builtin.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, mcp.StatusCode);
        Assert.Equal("testmcp_echo", (await mcp.JsonAsync())["tool"]!.GetValue<string>());
        Assert.Equal(new[] { "calculator", "current_time", "my_tasks", "remember" }, listed.Order().ToArray());
        // Through an agent that names it, the same key is offered the MCP tool: there the agent's list decides.
        var offered = platform.Api.Services.GetRequiredService<IToolCatalog>().ToolsFor(
            new ToolCaller(Guid.NewGuid(), null, IsAdmin: false), new AgentPlatform.Engine.Agents.AgentDefinition { Name = "mcp-user", Tools = ["testmcp_echo"] });
        Assert.Equal(new[] { "testmcp_echo" }, offered.Select(t => t.Name).ToArray());
    }

    [Fact]
    public async Task The_admin_key_may_call_any_tool_directly()
    {
        await WaitForMcpToolsAsync(platform);

        var response = await InvokeAsync(platform.Client(PlatformFixture.AdminKey), "testmcp_echo", """{"text":"admin"}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task A_key_with_an_empty_tool_list_may_use_no_tool()
    {
        var client = platform.Client((await CreateKeyAsync(platform, [])).Key);

        var refused = await InvokeAsync(client, "calculator", """{"expression":"1+1"}""");
        var listed = await client.GetFromJsonAsync<JsonArray>("/agent/tools");

        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Empty(listed!);
    }

    [Fact]
    public async Task An_unknown_tool_is_404()
    {
        var client = platform.Client((await CreateKeyAsync(platform, null)).Key);

        var response = await InvokeAsync(client, "no_such_tool", "{}");

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType!.MediaType);
        Assert.Contains("no_such_tool", (await response.JsonAsync())["detail"]!.GetValue<string>());
    }

    [Fact]
    public async Task Invalid_arguments_are_400_naming_the_field()
    {
        var client = platform.Client((await CreateKeyAsync(platform, null)).Key);

        var missing = await InvokeAsync(client, "calculator", "{}");
        var outOfRange = await InvokeAsync(client, "my_tasks", """{"limit":500,"status":"bogus"}""");
        var notAnObject = await InvokeAsync(client, "calculator", "[1,2]");
        var notJson = await InvokeAsync(client, "calculator", "{nope");

        Assert.Equal(HttpStatusCode.BadRequest, missing.StatusCode);
        Assert.Equal("application/problem+json", missing.Content.Headers.ContentType!.MediaType);
        Assert.Contains("expression is required.", (await missing.JsonAsync())["errors"]!["expression"]!.AsArray().Select(e => e!.GetValue<string>()));
        var errors = (await outOfRange.JsonAsync())["errors"]!;
        Assert.Equal(HttpStatusCode.BadRequest, outOfRange.StatusCode);
        Assert.Contains("at most 50", errors["limit"]![0]!.GetValue<string>());
        Assert.Contains("one of the values specified by the enum", errors["status"]![0]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.BadRequest, notAnObject.StatusCode);
        Assert.NotNull((await notAnObject.JsonAsync())["errors"]!["arguments"]);
        Assert.Equal(HttpStatusCode.BadRequest, notJson.StatusCode);
    }

    [Fact]
    public async Task A_slow_tool_times_out_as_an_outcome_and_the_server_keeps_working()
    {
        await WaitForMcpToolsAsync(platform);
        var client = platform.Client((await CreateKeyAsync(platform, ["testmcp_*"])).Key);

        // testmcp_sleep has a 1 s limit in the fixture (Tools:Timeouts:testmcp_sleep).
        var slow = await InvokeAsync(client, "testmcp_sleep", """{"seconds":20}""");
        var afterwards = await InvokeAsync(client, "testmcp_echo", """{"text":"still here"}""");

        Assert.Equal(HttpStatusCode.OK, slow.StatusCode);
        var body = await slow.JsonAsync();
        Assert.Equal("timeout", body["outcome"]!.GetValue<string>());
        Assert.Contains("did not finish within 1 s", body["error"]!.GetValue<string>());
        Assert.InRange(body["duration_ms"]!.GetValue<long>(), 900, 10_000);
        Assert.Equal("still here", (await afterwards.JsonAsync())["result"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_failing_tool_reports_its_error_as_an_outcome()
    {
        await WaitForMcpToolsAsync(platform);
        var client = platform.Client((await CreateKeyAsync(platform, ["*"])).Key);

        var divide = await (await InvokeAsync(client, "calculator", """{"expression":"1/0"}""")).JsonAsync();
        var mcp = await (await InvokeAsync(client, "testmcp_fail", """{"message":"disk on fire"}""")).JsonAsync();

        Assert.Equal(("error", "Division by zero."), (divide["outcome"]!.GetValue<string>(), divide["error"]!.GetValue<string>()));
        Assert.Equal("error", mcp["outcome"]!.GetValue<string>());
        Assert.Contains("disk on fire", mcp["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task Calculator_and_current_time_answer_directly()
    {
        var client = platform.Client((await CreateKeyAsync(platform, null)).Key);

        var sum = await (await InvokeAsync(client, "calculator", """{"expression":"2*(3+4) - 0.5"}""")).JsonAsync();
        var time = await (await InvokeAsync(client, "current_time", """{"timezone":"Asia/Tokyo"}""")).JsonAsync();
        var badZone = await (await InvokeAsync(client, "current_time", """{"timezone":"Mars/Olympus"}""")).JsonAsync();
        var noBody = await client.PostAsync("/agent/tools/current_time", null);

        Assert.Equal(13.5m, sum["result"]!["result"]!.GetValue<decimal>());
        Assert.Equal("Asia/Tokyo", time["result"]!["timezone"]!.GetValue<string>());
        var tokyo = DateTimeOffset.Parse(time["result"]!["time"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(TimeSpan.FromHours(9), tokyo.Offset);
        Assert.InRange(tokyo - DateTimeOffset.UtcNow, TimeSpan.FromMinutes(-1), TimeSpan.FromMinutes(1));
        Assert.Equal("error", badZone["outcome"]!.GetValue<string>());
        Assert.Contains("Mars/Olympus", badZone["error"]!.GetValue<string>());
        Assert.Equal("UTC", (await noBody.JsonAsync())["result"]!["timezone"]!.GetValue<string>());
    }

    [Fact]
    public async Task My_tasks_lists_only_the_callers_own_tasks()
    {
        var (mine, _) = await CreateKeyAsync(platform, null);
        var (theirs, _) = await CreateKeyAsync(platform, null);
        var myTask = (await (await platform.Client(mine).ExecuteAsync(new { task = "my own task for my_tasks", agent_type = "general" })).JsonAsync())["task_id"]!.GetValue<string>();
        var theirTask = (await (await platform.Client(theirs).ExecuteAsync(new { task = "someone else's task" })).JsonAsync())["task_id"]!.GetValue<string>();

        var response = await InvokeAsync(platform.Client(mine), "my_tasks", """{"status":"completed","limit":5}""");

        var body = await response.JsonAsync();
        Assert.Equal("ok", body["outcome"]!.GetValue<string>());
        var tasks = body["result"]!.AsArray().Select(t => t!.AsObject()).ToList();
        var listed = Assert.Single(tasks);
        Assert.Equal(myTask, listed["id"]!.GetValue<string>());
        Assert.Equal("completed", listed["status"]!.GetValue<string>());
        Assert.Equal("general", listed["agent"]!.GetValue<string>());
        Assert.Contains("my own task", listed["preview"]!.GetValue<string>());
        Assert.DoesNotContain(theirTask, body.ToJsonString());
    }

    [Fact]
    public async Task Tool_endpoints_need_a_key()
    {
        Assert.Equal(HttpStatusCode.Unauthorized, (await platform.Client().GetAsync("/agent/tools")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await InvokeAsync(platform.Client(), "calculator", """{"expression":"1"}""")).StatusCode);
    }
}
