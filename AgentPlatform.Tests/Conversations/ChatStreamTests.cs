using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using AgentPlatform.Tests.Infrastructure;

namespace AgentPlatform.Tests.Conversations;

[Collection(PlatformCollection.Name)]
public sealed class ChatStreamTests(PlatformFixture platform)
{
    private static string Unique(string prefix) => TestNames.Unique(prefix);

    private sealed record ServerEvent(string Type, JsonObject Data, TimeSpan At);

    private static async Task<(HttpResponseMessage Response, List<ServerEvent> Events)> StreamAsync(HttpClient client, object body,
        int stopAfter = int.MaxValue)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var response = await client.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/agent/chat/stream") { Content = JsonContent.Create(body) },
            HttpCompletionOption.ResponseHeadersRead);
        var events = new List<ServerEvent>();
        if (response.Content.Headers.ContentType?.MediaType != "text/event-stream") return (response, events);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        string? type = null;
        while (events.Count < stopAfter && await reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal)) type = line["event: ".Length..];
            else if (line.StartsWith("data: ", StringComparison.Ordinal))
                events.Add(new ServerEvent(type ?? "message", JsonNode.Parse(line["data: ".Length..])!.AsObject(), clock.Elapsed));
        }
        return (response, events);
    }

    [Fact]
    public async Task A_streamed_turn_sends_chunks_as_they_arrive_then_usage_and_cost_and_stores_the_whole_reply()
    {
        var marker = Unique("stream");
        const string answer = "Streaming sends each token as soon as the model writes it.";
        platform.Llm.Script(marker, new LlmStep(Content: answer, PromptTokens: 30, CompletionTokens: 12, ChunkDelay: TimeSpan.FromMilliseconds(150)));
        var client = platform.Client(await platform.CreateKeyAsync());

        var (response, events) = await StreamAsync(client, new { message = $"{marker} how does streaming work?", agent_type = "general" });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var deltas = events.Where(e => e.Type == "delta").ToList();
        Assert.True(deltas.Count >= 8, $"{deltas.Count} deltas");
        Assert.Equal(answer, string.Concat(deltas.Select(d => d.Data["text"]!.GetValue<string>())));
        // Chunks arrive spread out, as the model writes them, not all at the end.
        Assert.True(deltas[^1].At - deltas[0].At > TimeSpan.FromMilliseconds(800), $"{deltas[0].At} .. {deltas[^1].At}");

        var done = Assert.Single(events, e => e.Type == "done").Data;
        Assert.Same(events[^1].Data, done);
        Assert.Equal(42, done["usage"]!["total_tokens"]!.GetValue<int>());
        Assert.False(done.ContainsKey("reply")); // the deltas carried it
        Assert.True(done["cost_usd"]!.GetValue<decimal>() > 0);
        var session = done["session_id"]!.GetValue<string>();

        // The upstream call asked for usage in its stream; the stored history has the whole reply.
        var call = Assert.Single(platform.Llm.CallsFor(marker), c => !c.Completed);
        Assert.True(call.Body!["stream"]!.GetValue<bool>());
        var history = await (await client.GetAsync($"/agent/conversations/{session}")).JsonAsync();
        Assert.Equal(answer, history["messages"]![1]!["content"]!.GetValue<string>());
        Assert.Equal(done["message_id"]!.GetValue<string>(), history["messages"]![1]!["id"]!.GetValue<string>());
        var task = await client.StatusAsync(done["task_id"]!.GetValue<string>());
        Assert.Equal("completed", task["status"]!.GetValue<string>());
        Assert.Equal(answer, task["result"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_client_that_disconnects_stops_the_llm_call_and_nothing_is_stored()
    {
        var marker = Unique("hangup");
        var words = string.Join(" ", Enumerable.Range(0, 60).Select(i => $"w{i}"));
        platform.Llm.Script(marker, new LlmStep(Content: words, ChunkDelay: TimeSpan.FromMilliseconds(100)));
        var client = platform.Client(await platform.CreateKeyAsync());
        var session = Unique("gone");

        var (response, events) = await StreamAsync(client, new { message = $"{marker} talk for a while", session_id = session, agent_type = "general" },
            stopAfter: 3);
        Assert.Equal(3, events.Count);
        response.Dispose(); // the client goes away mid-answer

        await HttpExtensions.WaitUntilAsync(() => Task.FromResult(platform.Llm.AbortedCallsFor(marker).Count > 0), seconds: 10,
            what: "the upstream call to be aborted");
        Assert.DoesNotContain(platform.Llm.CallsFor(marker), c => c.Completed);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync($"/agent/conversations/{session}")).StatusCode);
    }

    [Fact]
    public async Task A_turn_that_fails_after_output_began_ends_with_an_error_event_carrying_the_problem()
    {
        var name = Unique("slowstream");
        var model = Unique("slow-model");
        var put = await platform.Client(PlatformFixture.AdminKey).PutAsJsonAsync($"/admin/agents/{name}", new
        {
            description = "Streams slowly and runs out of time.",
            system_prompt = "You are slow.",
            keywords = new[] { "zzslow" },
            models = new[] { new { provider = "default", model, cost_tier = 1 } },
            timeout_seconds = 1,
        });
        Assert.True(put.IsSuccessStatusCode, await put.Content.ReadAsStringAsync());
        platform.Llm.ScriptModel(model, new LlmStep(Content: string.Join(" ", Enumerable.Range(0, 40).Select(i => $"w{i}")),
            ChunkDelay: TimeSpan.FromMilliseconds(100)));
        var client = platform.Client(await platform.CreateKeyAsync());

        var (response, events) = await StreamAsync(client, new { message = "tell me everything", agent_type = name });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains(events, e => e.Type == "delta");
        var error = events[^1];
        Assert.Equal("error", error.Type);
        Assert.Equal(504, error.Data["status"]!.GetValue<int>());
        Assert.DoesNotContain(events, e => e.Type == "done");
    }

    [Fact]
    public async Task A_turn_that_fails_before_its_first_token_gets_a_problem_with_the_right_status()
    {
        var marker = Unique("streamfail");
        platform.Llm.Script(marker, new LlmStep(Status: 400));
        var client = platform.Client(await platform.CreateKeyAsync());

        var (response, events) = await StreamAsync(client, new { message = $"{marker} fail please", agent_type = "general" });

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType!.MediaType);
        Assert.Empty(events);

        var invalid = await client.PostAsJsonAsync("/agent/chat/stream", new { message = "" });
        Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
        Assert.NotNull((await invalid.JsonAsync())["errors"]!["message"]);
    }
}
