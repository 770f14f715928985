using System.ClientModel;
using System.ComponentModel;
using AgentPlatform.Engine.Llm;
using AgentPlatform.Tests.Infrastructure;
using Microsoft.Extensions.AI;
using OpenAI;

namespace AgentPlatform.Tests.Tools;

/// <summary>The tools converted once (PreparedToolsChatClient) reach the provider exactly as the adapter sends them itself.</summary>
[Collection(PlatformCollection.Name)]
public sealed class PreparedToolsTests(PlatformFixture platform)
{
    [Description("Looks up the weather of a city.")]
    private static string Weather([Description("The city")] string city, int days = 1) => $"{city}: sunny for {days} days";

    [Theory]
    [InlineData("auto")]
    [InlineData("none")]
    [InlineData("required")]
    [InlineData("weather")]
    public async Task The_request_carries_the_same_tools_and_tool_choice_as_without_it(string mode)
    {
        var openAi = new OpenAIClient(new ApiKeyCredential("sk-test"), new OpenAIClientOptions { Endpoint = new Uri(platform.Llm.BaseUrl) })
            .GetChatClient("tools-model").AsIChatClient();
        var tool = AIFunctionFactory.Create(Weather, "weather");
        ChatOptions Options() => new()
        {
            Tools = [tool, AIFunctionFactory.Create(() => "12:00", "current_time", "The time now.")],
            ToolMode = mode switch
            {
                "none" => ChatToolMode.None,
                "required" => ChatToolMode.RequireAny,
                "weather" => ChatToolMode.RequireSpecific("weather"),
                _ => ChatToolMode.Auto,
            },
            AllowMultipleToolCalls = mode == "auto" ? false : null,
        };
        var marker = TestNames.Unique("prepared");

        await openAi.GetResponseAsync($"{marker} plain", Options());
        await new PreparedToolsChatClient(openAi).GetResponseAsync($"{marker} prepared", Options());
        await new PreparedToolsChatClient(openAi).GetResponseAsync($"{marker} prepared again", Options()); // from the cache

        var bodies = platform.Llm.Calls.Where(c => c.Completed && c.UserMessage.StartsWith(marker)).OrderBy(c => c.At).Select(c => c.Body!).ToList();
        Assert.Equal(3, bodies.Count);
        foreach (var field in new[] { "tools", "tool_choice", "parallel_tool_calls" })
        {
            Assert.Equal(bodies[0][field]?.ToJsonString(), bodies[1][field]?.ToJsonString());
            Assert.Equal(bodies[0][field]?.ToJsonString(), bodies[2][field]?.ToJsonString());
        }
        Assert.Equal(2, bodies[1]["tools"]!.AsArray().Count);
        Assert.Contains("\"city\"", bodies[1]["tools"]!.ToJsonString());
    }

    [Fact]
    public void Options_it_cannot_reproduce_exactly_go_through_untouched()
    {
        var strict = new ChatOptions
        {
            Tools = [AIFunctionFactory.Create(() => "x", "x")],
            AdditionalProperties = new() { ["strictJsonSchema"] = true },
        };
        var hosted = new ChatOptions { Tools = [new HostedWebSearchTool()] };
        var none = new ChatOptions();

        Assert.Same(strict, PreparedToolsChatClient.Prepare(strict));
        Assert.Same(hosted, PreparedToolsChatClient.Prepare(hosted));
        Assert.Same(none, PreparedToolsChatClient.Prepare(none));
        Assert.Null(PreparedToolsChatClient.Prepare(null));
    }
}
