using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using AgentPlatform.Tests.Infrastructure;
using StackExchange.Redis;

namespace AgentPlatform.Tests.Conversations;

[Collection(PlatformCollection.Name)]
public sealed class ConversationTests(PlatformFixture platform)
{
    private static string Unique(string prefix) => TestNames.Unique(prefix);

    private static async Task<JsonObject> ChatAsync(HttpClient client, object body)
    {
        var response = await client.PostAsJsonAsync("/agent/chat", body);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return await response.JsonAsync();
    }

    private static string[] Texts(JsonArray? messages) =>
        messages!.Select(m => $"{m!["role"]!.GetValue<string>()}: {Content(m["content"])}").ToArray();

    // OpenAI's content is a string or an array of parts.
    private static string Content(JsonNode? content) => content switch
    {
        JsonArray parts => string.Concat(parts.Select(p => p?["text"]?.GetValue<string>())),
        null => "",
        _ => content.GetValue<string>(),
    };

    [Fact]
    public async Task A_session_carries_its_history_into_the_next_turn_and_is_listed_read_and_cleared()
    {
        var marker = Unique("chat");
        platform.Llm.Script(marker, new LlmStep(Content: "Nice to meet you, Ada.", PromptTokens: 40, CompletionTokens: 10),
            new LlmStep(Content: "Your name is Ada.", PromptTokens: 60, CompletionTokens: 8));
        var client = platform.Client(await platform.CreateKeyAsync());

        var first = await ChatAsync(client, new { message = $"{marker} My name is Ada.", agent_type = "general" });
        var session = first["session_id"]!.GetValue<string>();
        Assert.Equal("Nice to meet you, Ada.", first["reply"]!.GetValue<string>());
        Assert.Equal("general", first["agent"]!.GetValue<string>());
        Assert.Equal(50, first["usage"]!["total_tokens"]!.GetValue<int>());
        Assert.True(first["cost_usd"]!.GetValue<decimal>() > 0);
        Assert.Equal(first["task_id"]!.GetValue<string>(), first["message_id"]!.GetValue<string>());

        var second = await ChatAsync(client, new { message = $"{marker} What is my name?", session_id = session, agent_type = "general" });
        Assert.Equal(session, second["session_id"]!.GetValue<string>());
        Assert.Equal("Your name is Ada.", second["reply"]!.GetValue<string>());

        // The model saw the first turn before the new message.
        var call = platform.Llm.CallsFor(marker).Where(c => !c.Completed).Last();
        var seen = Texts(call.Messages);
        Assert.Equal(["user: " + marker + " My name is Ada.", "assistant: Nice to meet you, Ada.", "user: " + marker + " What is my name?"],
            seen.Skip(1).ToArray());
        Assert.StartsWith("system: ", seen[0]);

        var history = await (await client.GetAsync($"/agent/conversations/{session}")).JsonAsync();
        Assert.Equal(session, history["session_id"]!.GetValue<string>());
        var messages = history["messages"]!.AsArray();
        Assert.Equal(["user", "assistant", "user", "assistant"], messages.Select(m => m!["role"]!.GetValue<string>()).ToArray());
        Assert.Equal("Your name is Ada.", messages[3]!["content"]!.GetValue<string>());
        Assert.Equal(second["message_id"]!.GetValue<string>(), messages[3]!["id"]!.GetValue<string>());
        Assert.Equal("general", messages[3]!["agent"]!.GetValue<string>());
        Assert.NotNull(messages[0]!["created_at"]);

        var list = await (await client.GetAsync("/agent/conversations")).JsonAsync();
        var listed = Assert.Single(list["conversations"]!.AsArray());
        Assert.Equal(session, listed!["session_id"]!.GetValue<string>());
        Assert.Equal(4, listed["message_count"]!.GetValue<int>());
        Assert.Equal($"{marker} My name is Ada.", listed["title"]!.GetValue<string>());
        Assert.Contains("agent_active_conversations", await platform.Client(PlatformFixture.AdminKey).GetStringAsync("/metrics"));

        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync($"/agent/conversations/{session}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync($"/agent/conversations/{session}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.DeleteAsync($"/agent/conversations/{session}")).StatusCode);
        Assert.Empty((await (await client.GetAsync("/agent/conversations")).JsonAsync())["conversations"]!.AsArray());

        // A cleared session starts afresh: the next turn sees no history.
        await ChatAsync(client, new { message = $"{marker} Hello again", session_id = session, agent_type = "general" });
        Assert.Equal(2, platform.Llm.CallsFor(marker).Where(c => !c.Completed).Last().Messages!.Count);
    }

    [Fact]
    public async Task Another_keys_session_is_not_found_and_its_own_use_of_the_id_is_a_separate_conversation()
    {
        var marker = Unique("owner");
        platform.Llm.Script(marker, new LlmStep(Content: "Noted."));
        var owner = platform.Client(await platform.CreateKeyAsync());
        var other = platform.Client(await platform.CreateKeyAsync());
        var session = Unique("shared");
        await ChatAsync(owner, new { message = $"{marker} the secret is 42", session_id = session, agent_type = "general" });

        var read = await other.GetAsync($"/agent/conversations/{session}");
        Assert.Equal(HttpStatusCode.NotFound, read.StatusCode);
        Assert.Equal("application/problem+json", read.Content.Headers.ContentType!.MediaType);
        Assert.Equal(HttpStatusCode.NotFound, (await other.DeleteAsync($"/agent/conversations/{session}")).StatusCode);
        Assert.Empty((await (await other.GetAsync("/agent/conversations")).JsonAsync())["conversations"]!.AsArray());

        await ChatAsync(other, new { message = $"{marker} what is the secret?", session_id = session, agent_type = "general" });
        var call = platform.Llm.CallsFor(marker).Where(c => !c.Completed).Last();
        Assert.DoesNotContain("42", call.Messages!.ToJsonString());
        // The owner's conversation is untouched.
        var history = await (await owner.GetAsync($"/agent/conversations/{session}")).JsonAsync();
        Assert.Equal(2, history["messages"]!.AsArray().Count);
    }

    [Fact]
    public async Task A_chat_turn_recalls_its_users_memories_as_fenced_data_and_no_one_elses()
    {
        var marker = Unique("recall");
        platform.Llm.Script(marker, new LlmStep(Content: "Insulate the hives."));
        var key = await platform.CreateKeyAsync();
        var client = platform.Client(key);
        foreach (var (content, user) in new[] { ("The user keeps three bee hives in the garden.", "ana"), ("The user is allergic to bee stings.", "ben") })
        {
            var stored = await client.PostAsJsonAsync("/agent/memories", new { content, user });
            Assert.Equal(HttpStatusCode.Created, stored.StatusCode);
        }

        await ChatAsync(client, new { message = $"{marker} How should I prepare my bee hives for winter?", user = "ana", agent_type = "general" });
        var messages = platform.Llm.CallsFor(marker).Where(c => !c.Completed).Last().Messages!;
        var recalled = Assert.Single(messages, m => Content(m!["content"]).Contains("<memories>"));
        Assert.Equal("user", recalled!["role"]!.GetValue<string>());
        Assert.Contains("three bee hives", Content(recalled["content"]));
        Assert.DoesNotContain("allergic", messages.ToJsonString());

        // Another key asking the same never sees them.
        await ChatAsync(platform.Client(await platform.CreateKeyAsync()),
            new { message = $"{marker} How should I prepare my bee hives for winter?", user = "ana", agent_type = "general" });
        Assert.DoesNotContain("<memories>", platform.Llm.CallsFor(marker).Where(c => !c.Completed).Last().Messages!.ToJsonString());

        var badUser = await client.PostAsJsonAsync("/agent/chat", new { message = "hi", user = new string('u', 500) });
        Assert.Equal(HttpStatusCode.BadRequest, badUser.StatusCode);
        Assert.NotNull((await badUser.JsonAsync())["errors"]!["user"]);
    }

    [Fact]
    public async Task Bad_chat_input_is_a_400_naming_the_field()
    {
        var client = platform.Client(await platform.CreateKeyAsync());

        var blank = await client.PostAsJsonAsync("/agent/chat", new { message = "  " });
        Assert.Equal(HttpStatusCode.BadRequest, blank.StatusCode);
        Assert.NotNull((await blank.JsonAsync())["errors"]!["message"]);

        var badSession = await client.PostAsJsonAsync("/agent/chat", new { message = "hi", session_id = "no spaces allowed" });
        Assert.Equal(HttpStatusCode.BadRequest, badSession.StatusCode);
        Assert.NotNull((await badSession.JsonAsync())["errors"]!["session_id"]);

        var unknownAgent = await client.PostAsJsonAsync("/agent/chat", new { message = "hi", agent_type = "nobody" });
        Assert.Equal(HttpStatusCode.BadRequest, unknownAgent.StatusCode);
        Assert.NotNull((await unknownAgent.JsonAsync())["errors"]!["agent_type"]);

        Assert.Equal(HttpStatusCode.BadRequest, (await client.GetAsync("/agent/conversations/bad%20id")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await platform.Client().PostAsJsonAsync("/agent/chat", new { message = "hi" })).StatusCode);
    }

    [Fact]
    public async Task A_session_survives_losing_its_hot_copy_in_redis()
    {
        var marker = Unique("durable");
        platform.Llm.Script(marker, new LlmStep(Content: "Noted: you like tea."));
        var client = platform.Client(await platform.CreateKeyAsync());
        var first = await ChatAsync(client, new { message = $"{marker} I like tea", agent_type = "general" });
        var session = first["session_id"]!.GetValue<string>();

        // Every hot copy gone, as after a Redis restart without persistence or an expired TTL.
        await using (var redis = await ConnectionMultiplexer.ConnectAsync(platform.Redis.ConnectionString + ",allowAdmin=true"))
        {
            var server = redis.GetServers().Single();
            var keys = server.Keys(pattern: "conv:*").ToArray();
            Assert.NotEmpty(keys);
            await redis.GetDatabase().KeyDeleteAsync(keys);
        }

        var history = await (await client.GetAsync($"/agent/conversations/{session}")).JsonAsync();
        Assert.Equal(2, history["messages"]!.AsArray().Count);
        await ChatAsync(client, new { message = $"{marker} what do I like?", session_id = session, agent_type = "general" });
        var seen = platform.Llm.CallsFor(marker).Where(c => !c.Completed).Last().Messages!.ToJsonString();
        Assert.Contains("Noted: you like tea.", seen);
        // The reload rebuilt the hot copy, and it is complete.
        var again = await (await client.GetAsync($"/agent/conversations/{session}")).JsonAsync();
        Assert.Equal(4, again["messages"]!.AsArray().Count);
    }

    [Fact]
    public async Task A_session_goes_on_through_a_redis_outage_and_restart()
    {
        var marker = Unique("outage");
        platform.Llm.Script(marker, new LlmStep(Content: "before the outage"), new LlmStep(Content: "during the outage"), new LlmStep(Content: "after"));
        var client = platform.Client(await platform.CreateKeyAsync()); // enterprise: no Redis-backed request limit
        var session = (await ChatAsync(client, new { message = $"{marker} one", agent_type = "general" }))["session_id"]!.GetValue<string>();

        await platform.Redis.StopAsync();
        try
        {
            await ChatAsync(client, new { message = $"{marker} two", session_id = session, agent_type = "general" });
            Assert.Contains("before the outage", platform.Llm.CallsFor(marker).Where(c => !c.Completed).Last().Messages!.ToJsonString());
        }
        finally
        {
            await platform.Redis.StartAgainAsync(); // empty: the test Redis keeps nothing across restarts
        }

        await ChatAsync(client, new { message = $"{marker} three", session_id = session, agent_type = "general" });
        var seen = platform.Llm.CallsFor(marker).Where(c => !c.Completed).Last().Messages!.ToJsonString();
        Assert.Contains("before the outage", seen);
        Assert.Contains("during the outage", seen);
        Assert.Equal(6, (await (await client.GetAsync($"/agent/conversations/{session}")).JsonAsync())["messages"]!.AsArray().Count);
    }

    [Fact]
    public async Task A_hot_copy_older_than_postgres_is_never_served()
    {
        var marker = Unique("stale");
        platform.Llm.Script(marker, new LlmStep(Content: "first answer"), new LlmStep(Content: "second answer"), new LlmStep(Content: "third answer"));
        var client = platform.Client(await platform.CreateKeyAsync());
        var session = (await ChatAsync(client, new { message = $"{marker} one", agent_type = "general" }))["session_id"]!.GetValue<string>();

        // Keep the hot copy as it is after the first turn (a read builds it)…
        Assert.True((await client.GetAsync($"/agent/conversations/{session}")).IsSuccessStatusCode);
        await using var redis = await ConnectionMultiplexer.ConnectAsync(platform.Redis.ConnectionString + ",allowAdmin=true");
        var keys = redis.GetServers().Single().Keys(pattern: $"conv:*:{session}*").ToArray();
        Assert.Equal(2, keys.Length);
        var saved = await Task.WhenAll(keys.Select(k => redis.GetDatabase().KeyDumpAsync(k)));
        await ChatAsync(client, new { message = $"{marker} two", session_id = session, agent_type = "general" });
        // …and bring it back, as a Redis restored from an older snapshot (or one a writer could not reach) would have it.
        await redis.GetDatabase().KeyDeleteAsync(keys);
        for (var i = 0; i < keys.Length; i++) await redis.GetDatabase().KeyRestoreAsync(keys[i], saved[i]!, TimeSpan.FromHours(1));

        var history = await (await client.GetAsync($"/agent/conversations/{session}")).JsonAsync();
        Assert.Equal(4, history["messages"]!.AsArray().Count);
        await ChatAsync(client, new { message = $"{marker} three", session_id = session, agent_type = "general" });
        Assert.Contains("second answer", platform.Llm.CallsFor(marker).Where(c => !c.Completed).Last().Messages!.ToJsonString());
    }

    [Fact]
    public async Task Concurrent_turns_of_one_session_are_all_kept_in_order_and_the_hot_copy_matches_postgres()
    {
        var marker = Unique("race");
        platform.Llm.Script(marker, new LlmStep(Delay: TimeSpan.FromMilliseconds(50), Content: "ok"));
        var key = await platform.CreateKeyAsync();
        var client = platform.Client(key);
        var second = PlatformFixture.ClientFor(platform.StartExtraApi(), key);
        var session = Unique("busy");

        // Reads race the writes: each turn reads the history while others are being stored.
        await Task.WhenAll(Enumerable.Range(0, 8).Select(i =>
            ChatAsync(i % 2 == 0 ? client : second, new { message = $"{marker} turn {i}", session_id = session, agent_type = "general" })));
        var hot = (await (await client.GetAsync($"/agent/conversations/{session}")).JsonAsync())["messages"]!.AsArray();
        Assert.Equal(16, hot.Count);
        for (var i = 0; i < 16; i += 2)
        {
            Assert.Equal("user", hot[i]!["role"]!.GetValue<string>());
            Assert.Equal("assistant", hot[i + 1]!["role"]!.GetValue<string>());
        }
        Assert.Equal(8, hot.Where((_, i) => i % 2 == 0).Select(m => m!["content"]!.GetValue<string>()).Distinct().Count());

        await using (var redis = await ConnectionMultiplexer.ConnectAsync(platform.Redis.ConnectionString + ",allowAdmin=true"))
            await redis.GetDatabase().KeyDeleteAsync(redis.GetServers().Single().Keys(pattern: "conv:*").ToArray());
        var durable = (await (await second.GetAsync($"/agent/conversations/{session}")).JsonAsync())["messages"]!.AsArray();
        Assert.Equal(hot.Select(m => m!["id"]!.GetValue<string>()), durable.Select(m => m!["id"]!.GetValue<string>()));
    }

    [Fact]
    public async Task An_async_task_with_a_session_id_joins_the_same_conversation()
    {
        var marker = Unique("asyncturn");
        platform.Llm.Script(marker, new LlmStep(Content: "The worker answered."), new LlmStep(Content: "Second answer."));
        var client = platform.Client(await platform.CreateKeyAsync());
        var session = Unique("s");

        var accepted = await (await client.ExecuteAsync(new { task = $"{marker} first", session_id = session, async_execution = true, agent_type = "general" }))
            .JsonAsync();
        var final = await client.WaitForFinalAsync(accepted["task_id"]!.GetValue<string>());
        Assert.Equal("completed", final["status"]!.GetValue<string>());
        Assert.Equal(session, final["session_id"]!.GetValue<string>());

        await ChatAsync(client, new { message = $"{marker} second", session_id = session, agent_type = "general" });
        Assert.Contains("The worker answered.", platform.Llm.CallsFor(marker).Where(c => !c.Completed).Last().Messages!.ToJsonString());
        var history = await (await client.GetAsync($"/agent/conversations/{session}")).JsonAsync();
        Assert.Equal(accepted["task_id"]!.GetValue<string>(), history["messages"]![1]!["id"]!.GetValue<string>());
    }

    [Fact]
    public async Task Turns_that_outgrow_the_context_window_are_summarized_once_and_the_summary_is_reused()
    {
        var name = Unique("tiny");
        var model = Unique("tiny-model");
        var admin = platform.Client(PlatformFixture.AdminKey);
        var put = await admin.PutAsJsonAsync($"/admin/agents/{name}", new
        {
            description = "An agent with a tiny context window.",
            system_prompt = "You are brief.",
            keywords = new[] { "zzwindow" },
            models = new[] { new { provider = "default", model, input_per_1k = 0.001m, output_per_1k = 0.002m, cost_tier = 1 } },
            max_output_tokens = 100,
            context_window_tokens = 1600,
        });
        Assert.True(put.IsSuccessStatusCode, await put.Content.ReadAsStringAsync());
        var words = string.Join(" ", Enumerable.Range(0, 120).Select(i => $"word{i}"));
        platform.Llm.ScriptModel(model, new LlmStep(Content: "Reply " + words, PromptTokens: 500, CompletionTokens: 130));
        var client = platform.Client(await platform.CreateKeyAsync());
        var session = Unique("long");

        // Each turn is ~2 x 250 tokens; the window leaves ~1,500 for history, so the fourth turn no longer fits everything.
        var turns = new List<JsonObject>();
        for (var i = 1; i <= 5; i++)
            turns.Add(await ChatAsync(client, new { message = $"turn{i}-start {words}", session_id = session, agent_type = name }));

        var calls = platform.Llm.CallsForModel(model);
        var summaries = calls.Where(c => c.Messages![0]!["content"]!.GetValue<string>().StartsWith("Summarize the conversation")).ToList();
        var summary = Assert.Single(summaries);
        Assert.Contains("turn1-start", summary.Messages!.ToJsonString());

        // The turn after the summary sends it instead of the oldest turns; the one after that reuses it without a new call.
        var answered = calls.Where(c => !summaries.Contains(c)).ToList();
        Assert.Equal(5, answered.Count);
        foreach (var later in answered.Skip(3))
        {
            var sent = later.Messages!.ToJsonString();
            Assert.Contains("conversation_summary", sent);
            Assert.DoesNotContain("turn1-start", sent);
        }
        Assert.Contains("turn1-start", answered[2].Messages!.ToJsonString());

        // The summary call is part of its turn's cost, and shows in the task's runs.
        var status = await client.StatusAsync(turns[3]["task_id"]!.GetValue<string>());
        var runs = status["runs"]!.AsArray();
        Assert.Contains(runs, r => r!["outcome"]!.GetValue<string>() == "summary");
        Assert.Equal(runs.Sum(r => r!["cost_usd"]!.GetValue<decimal>()), status["cost_usd"]!.GetValue<decimal>());
        Assert.True(turns[3]["cost_usd"]!.GetValue<decimal>() > turns[4]["cost_usd"]!.GetValue<decimal>());
        // The stored history keeps every message.
        var history = await (await client.GetAsync($"/agent/conversations/{session}")).JsonAsync();
        Assert.Equal(10, history["messages"]!.AsArray().Count);
    }
}
