using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using AgentPlatform.Tests.Infrastructure;

namespace AgentPlatform.Tests.Agents;

[Collection(PlatformCollection.Name)]
public sealed class AgentEngineTests(PlatformFixture platform)
{
    private HttpClient Admin => platform.Client(PlatformFixture.AdminKey);

    private static string Unique(string prefix) => TestNames.Unique(prefix);

    private async Task PutAgentAsync(string name, object definition)
    {
        var response = await Admin.PutAsJsonAsync($"/admin/agents/{name}", definition);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
    }

    private static object Definition(string description, string systemPrompt, params object[] models) => new
    {
        description,
        system_prompt = systemPrompt,
        keywords = new[] { "zzunique" },
        models,
    };

    private static object Model(string model, decimal input = 0.001m, decimal output = 0.002m) =>
        new { provider = "default", model, input_per_1k = input, output_per_1k = output, cost_tier = 1 };

    [Fact]
    public async Task A_dynamic_agent_is_used_by_a_second_api_instance_and_by_the_worker_within_a_second()
    {
        var name = Unique("dyn");
        var model = Unique("dyn-model");
        var second = platform.StartExtraApi();
        var key = await platform.CreateKeyAsync();
        var otherInstance = PlatformFixture.ClientFor(second, key);

        await PutAgentAsync(name, Definition("Answers questions about zebrafish aquariums.", "You are the first prompt.", Model(model)));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await HttpExtensions.WaitUntilAsync(async () => (await otherInstance.GetAsync($"/agents/{name}")).IsSuccessStatusCode,
            seconds: 5, what: "the second instance to see the agent");
        var seenAfter = clock.Elapsed;

        // Routable the moment it exists: the router on the other instance picks it for its field.
        var routed = await (await otherInstance.ExecuteAsync(new { task = "How warm should a zebrafish aquarium be?", strategy = "single" })).JsonAsync();
        Assert.Equal(name, routed["routing"]!["agent"]!.GetValue<string>());

        var sync = await (await otherInstance.ExecuteAsync(new { task = "hello zebrafish", agent_type = name })).JsonAsync();
        Assert.Equal(name, sync["agent"]!.GetValue<string>());
        Assert.Equal(model, sync["model"]!.GetValue<string>());

        // A change reaches the Worker too: it answers with the new system prompt.
        await PutAgentAsync(name, Definition("Answers questions about zebrafish aquariums.", "You are the second prompt.", Model(model)));
        await Task.Delay(TimeSpan.FromSeconds(1));
        var accepted = await (await otherInstance.ExecuteAsync(new { task = "hello again zebrafish", agent_type = name, async_execution = true })).JsonAsync();
        var final = await otherInstance.WaitForFinalAsync(accepted["task_id"]!.GetValue<string>());
        Assert.Equal("completed", final["status"]!.GetValue<string>());
        var workerCall = platform.Llm.CallsForModel(model).Last();
        Assert.Contains("You are the second prompt.", workerCall.Messages!.ToJsonString());

        // Removing it removes it everywhere.
        Assert.Equal(HttpStatusCode.NoContent, (await Admin.DeleteAsync($"/admin/agents/{name}")).StatusCode);
        await HttpExtensions.WaitUntilAsync(async () => (await otherInstance.GetAsync($"/agents/{name}")).StatusCode == HttpStatusCode.NotFound,
            seconds: 5, what: "the second instance to drop the agent");
        Assert.True(seenAfter < TimeSpan.FromSeconds(1.5), $"the second instance saw the new agent after {seenAfter}");
    }

    [Fact]
    public async Task Invalid_agent_definitions_are_refused_with_field_level_400s()
    {
        var response = await Admin.PutAsJsonAsync("/admin/agents/Bad Name!", new
        {
            description = "",
            system_prompt = "x",
            models = new[] { new { provider = "nowhere", model = "", cost_tier = 9 } },
            tools = new[] { "bad tool!" },
            temperature = 3.5,
        });

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var errors = (await response.JsonAsync())["errors"]!.AsObject();
        foreach (var field in new[] { "name", "description", "models[0].provider", "models[0].model", "models[0].cost_tier", "tools[0]", "temperature" })
            Assert.True(errors.ContainsKey(field), $"missing {field}: {errors.ToJsonString()}");
        Assert.Equal(HttpStatusCode.Forbidden, (await platform.Client(await platform.CreateKeyAsync()).PutAsJsonAsync("/admin/agents/x",
            Definition("d", "p", Model("m")))).StatusCode);
    }

    [Fact]
    public async Task Agent_examples_are_validated_with_400s_naming_the_field_and_stored_when_valid()
    {
        var name = Unique("examples");
        async Task<System.Text.Json.Nodes.JsonObject> Refused(object body)
        {
            using var response = await Admin.PutAsJsonAsync($"/admin/agents/{name}", body);
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            return (await response.JsonAsync())["errors"]!.AsObject();
        }

        var tooMany = await Refused(new { description = "d", system_prompt = "p", examples = Enumerable.Range(0, 31).Select(i => $"Task {i}").ToArray() });
        var bad = await Refused(new { description = "d", system_prompt = "p", examples = new[] { "fine", "", new string('x', 501) } });
        var notAList = await Refused(new { description = "d", system_prompt = "p", examples = (string[]?)null });

        Assert.True(tooMany.ContainsKey("examples"), tooMany.ToJsonString());
        Assert.True(bad.ContainsKey("examples[1]") && bad.ContainsKey("examples[2]") && !bad.ContainsKey("examples[0]"), bad.ToJsonString());
        Assert.True(notAList.ContainsKey("examples"), notAList.ToJsonString());
        // A string where a list belongs is a 400 too, never a 500.
        using var wrongType = await Admin.PutAsync($"/admin/agents/{name}", new StringContent(
            """{"description": "d", "system_prompt": "p", "examples": "Convert 72 °F to Celsius"}""", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, wrongType.StatusCode);

        await PutAgentAsync(name, new { description = "d", system_prompt = "p", examples = new[] { "When should I plant tulip bulbs?" } });
        var stored = await (await Admin.GetAsync($"/admin/agents/{name}")).JsonAsync();
        Assert.Equal("When should I plant tulip bulbs?", stored["definition"]!["examples"]![0]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.NoContent, (await Admin.DeleteAsync($"/admin/agents/{name}")).StatusCode);
    }

    [Fact]
    public async Task A_breaker_opens_after_five_failures_the_fallback_answers_then_it_half_opens_and_closes()
    {
        var name = Unique("breaker");
        var primary = Unique("primary");
        var fallback = Unique("fallback");
        platform.Llm.ScriptModel(primary, new LlmStep(Status: 500));
        platform.Llm.ScriptModel(fallback, new LlmStep(Content: "from the fallback"));
        await PutAgentAsync(name, Definition("Breaker test agent.", "You test breakers.", Model(primary), Model(fallback)));
        var client = platform.Client(await platform.CreateKeyAsync());

        for (var i = 0; i < 5; i++)
        {
            var answer = await (await client.ExecuteAsync(new { task = $"question {i}", agent_type = name })).JsonAsync();
            Assert.Equal("from the fallback", answer["result"]!.GetValue<string>());
            Assert.Equal(fallback, answer["model"]!.GetValue<string>());
        }
        var health = await (await client.GetAsync($"/agents/{name}/health")).JsonAsync();
        Assert.Equal("open", health["models"]![0]!["breaker_state"]!.GetValue<string>());
        Assert.Equal("closed", health["models"]![1]!["breaker_state"]!.GetValue<string>());
        Assert.Equal("degraded", health["status"]!.GetValue<string>());
        Assert.Equal("The provider answered 500 (server error).", health["models"]![0]!["last_error"]!.GetValue<string>());
        Assert.DoesNotContain("scripted failure", health.ToJsonString());
        var metrics = await platform.Client(PlatformFixture.AdminKey).GetStringAsync("/metrics");
        Assert.Matches($"circuit_breaker_state\\{{[^}}]*agent=\"{name}\"[^}}]*model=\"default/{primary}\"[^}}]*\\}} 1", metrics);

        // Open: the primary is not even called.
        var callsWhileClosed = platform.Llm.CallsForModel(primary).Count;
        var skipped = await (await client.ExecuteAsync(new { task = "question while open", agent_type = name })).JsonAsync();
        Assert.Equal(callsWhileClosed, platform.Llm.CallsForModel(primary).Count);
        Assert.Equal("circuit_open", skipped["runs"]![0]!["attempts"]![0]!["outcome"]!.GetValue<string>());

        // After the break (2 s in the tests) one probe goes through; it succeeds and the breaker closes.
        platform.Llm.ScriptModel(primary, new LlmStep(Content: "primary is back"));
        await Task.Delay(TimeSpan.FromSeconds(2.5));
        var probe = await (await client.ExecuteAsync(new { task = "question after the break", agent_type = name })).JsonAsync();
        Assert.Equal("primary is back", probe["result"]!.GetValue<string>());
        var healed = await (await client.GetAsync($"/agents/{name}/health")).JsonAsync();
        Assert.Equal("closed", healed["models"]![0]!["breaker_state"]!.GetValue<string>());
        Assert.Equal("healthy", healed["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task With_every_breaker_open_the_request_is_503_naming_the_agent_with_retry_after()
    {
        var name = Unique("doomed");
        var model = Unique("doomed-model");
        platform.Llm.ScriptModel(model, new LlmStep(Status: 503));
        await PutAgentAsync(name, Definition("Always failing agent.", "You fail.", Model(model)));
        var client = platform.Client(await platform.CreateKeyAsync());

        for (var i = 0; i < 5; i++)
            Assert.Equal(HttpStatusCode.BadGateway, (await client.ExecuteAsync(new { task = $"try {i}", agent_type = name })).StatusCode);
        var refused = await client.ExecuteAsync(new { task = "try once more", agent_type = name });

        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal("application/problem+json", refused.Content.Headers.ContentType!.MediaType);
        Assert.InRange(refused.Headers.RetryAfter!.Delta!.Value.TotalSeconds, 1, 2);
        var problem = await refused.JsonAsync();
        Assert.Equal(name, problem["agent"]!.GetValue<string>());
        Assert.Contains(name, problem["detail"]!.GetValue<string>());
    }

    [Fact]
    public async Task Parallel_takes_the_best_ranked_acceptable_answer_cancels_slower_losers_and_counts_what_was_spent()
    {
        var (a, b, c, d) = (Unique("par-a"), Unique("par-b"), Unique("par-c"), Unique("par-d"));
        var (ma, mb, mc, md) = (Unique("m-a"), Unique("m-b"), Unique("m-c"), Unique("m-d"));
        platform.Llm.ScriptModel(ma, new LlmStep(Status: 400));                                            // fails: not acceptable
        platform.Llm.ScriptModel(mb, new LlmStep(Delay: TimeSpan.FromMilliseconds(400), Content: "answer b", PromptTokens: 1000, CompletionTokens: 1000));
        platform.Llm.ScriptModel(mc, new LlmStep(Content: "answer c", PromptTokens: 1000, CompletionTokens: 1000)); // fast, ranked lower
        platform.Llm.ScriptModel(md, new LlmStep(Delay: TimeSpan.FromSeconds(20), Content: "answer d"));  // slow: cancelled
        foreach (var (agent, model) in new[] { (a, ma), (b, mb), (c, mc), (d, md) })
            await PutAgentAsync(agent, Definition($"Parallel agent {agent}.", "You answer.", Model(model)));
        var client = platform.Client(await platform.CreateKeyAsync());

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var response = await client.ExecuteAsync(new { task = "parallel question", strategy = "parallel", agents = new[] { a, b, c, d } });
        var elapsed = clock.Elapsed;

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.JsonAsync();
        Assert.Equal("parallel", body["strategy"]!.GetValue<string>());
        Assert.Equal(b, body["agent"]!.GetValue<string>());
        Assert.Equal("answer b", body["result"]!.GetValue<string>());
        var runs = body["runs"]!.AsArray().ToDictionary(r => r!["agent"]!.GetValue<string>(), r => r!["outcome"]!.GetValue<string>());
        Assert.Equal("failed", runs[a]);
        Assert.Equal("ok", runs[b]);
        Assert.Equal("not_chosen", runs[c]);
        Assert.Equal("cancelled", runs[d]);
        // b and c both answered and were billed: 2 × (1000 × $0.001 + 1000 × $0.002) / 1000.
        Assert.Equal(0.006m, body["cost_usd"]!.GetValue<decimal>());
        Assert.True(elapsed < TimeSpan.FromSeconds(5), $"took {elapsed}: the slow loser was not cancelled");
    }

    [Fact]
    public async Task Cascade_hands_each_answer_to_the_next_agent_and_returns_the_last_refinement()
    {
        var (first, second) = (Unique("cas-a"), Unique("cas-b"));
        var (m1, m2) = (Unique("m-first"), Unique("m-second"));
        platform.Llm.ScriptModel(m1, new LlmStep(Content: "draft from the first agent", PromptTokens: 500, CompletionTokens: 500));
        platform.Llm.ScriptModel(m2, new LlmStep(Content: "refined by the second agent", PromptTokens: 500, CompletionTokens: 500));
        await PutAgentAsync(first, Definition("Cascade first.", "You draft.", Model(m1)));
        await PutAgentAsync(second, Definition("Cascade second.", "You refine.", Model(m2)));
        var client = platform.Client(await platform.CreateKeyAsync());

        var body = await (await client.ExecuteAsync(new { task = "cascade question", strategy = "cascade", agents = new[] { first, second } })).JsonAsync();

        Assert.Equal("cascade", body["strategy"]!.GetValue<string>());
        Assert.Equal(second, body["agent"]!.GetValue<string>());
        Assert.Equal("refined by the second agent", body["result"]!.GetValue<string>());
        Assert.Equal(2, body["runs"]!.AsArray().Count);
        Assert.Equal(2000, body["usage"]!["total_tokens"]!.GetValue<int>());
        Assert.Equal(0.003m, body["cost_usd"]!.GetValue<decimal>());
        var secondCall = platform.Llm.CallsForModel(m2).Single();
        Assert.Contains("draft from the first agent", secondCall.Messages!.ToJsonString());
    }

    [Fact]
    public async Task Bad_strategy_requests_are_400_naming_the_field()
    {
        var client = platform.Client(await platform.CreateKeyAsync());

        var badStrategy = await client.ExecuteAsync(new { task = "x", strategy = "random" });
        var oneAgent = await client.ExecuteAsync(new { task = "x", strategy = "parallel", agents = new[] { "code" } });
        var unknownAgent = await client.ExecuteAsync(new { task = "x", strategy = "parallel", agents = new[] { "code", "nobody" } });

        Assert.NotNull((await badStrategy.JsonAsync())["errors"]!["strategy"]);
        Assert.NotNull((await oneAgent.JsonAsync())["errors"]!["agents"]);
        Assert.NotNull((await unknownAgent.JsonAsync())["errors"]!["agents"]);
    }

    [Fact]
    public async Task A_task_calls_a_tool_through_the_model_and_the_task_record_shows_the_call()
    {
        platform.Llm.Script("tool-roundtrip", new LlmStep(ToolCalls: [new ToolCallStep("calculator", """{"expression":"2*(3+4)"}""")]),
            new LlmStep(Content: "The answer is 14."));
        var client = platform.Client(await platform.CreateKeyAsync());

        var body = await (await client.ExecuteAsync(new { task = "tool-roundtrip: what is 2*(3+4)?", agent_type = "general", async_execution = true })).JsonAsync();
        var final = await client.WaitForFinalAsync(body["task_id"]!.GetValue<string>());

        Assert.Equal("completed", final["status"]!.GetValue<string>());
        Assert.Equal("The answer is 14.", final["result"]!.GetValue<string>());
        var call = Assert.Single(final["tool_calls"]!.AsArray());
        Assert.Equal("calculator", call!["tool"]!.GetValue<string>());
        Assert.Equal("ok", call["outcome"]!.GetValue<string>());
        // The model saw the tool's result in its second call, and both calls are counted.
        var calls = platform.Llm.CallsFor("tool-roundtrip").Where(c => !c.Completed).ToList();
        Assert.Equal(2, calls.Count);
        Assert.Contains("14", calls[1].Messages!.Last()!.ToJsonString());
        Assert.Equal(300, final["usage"]!["total_tokens"]!.GetValue<int>());
    }

    [Fact]
    public async Task A_tool_the_key_may_not_use_is_not_offered_to_the_model()
    {
        var admin = platform.Client(PlatformFixture.AdminKey);
        var created = await (await admin.PostAsJsonAsync("/admin/keys", new { name = "no-calc", tier = "pro", allowed_tools = new[] { "current_time" } })).JsonAsync();
        var client = platform.Client(created["key"]!.GetValue<string>());
        platform.Llm.Script("tool-offer", new LlmStep(Content: "fine"));

        await client.ExecuteAsync(new { task = "tool-offer please", agent_type = "general" });

        var offered = platform.Llm.CallsFor("tool-offer").First().Tools!.Select(t => t!["function"]!["name"]!.GetValue<string>()).ToList();
        Assert.Equal(["current_time"], offered);
    }

    [Fact]
    public async Task A_providers_keys_are_used_round_robin_and_a_refused_key_rests()
    {
        var name = Unique("pooled");
        var model = Unique("pooled-model");
        await PutAgentAsync(name, new
        {
            description = "Uses the pooled provider.", system_prompt = "You answer.",
            models = new[] { new { provider = "pool", model, cost_tier = 1 } },
        });
        var client = platform.Client(await platform.CreateKeyAsync());

        for (var i = 0; i < 6; i++) await client.ExecuteAsync(new { task = $"pooled {i}", agent_type = name });
        var firstRound = platform.Llm.CallsForModel(model).Select(c => c.Authorization).ToList();

        Assert.Equal(6, firstRound.Count);
        Assert.Equal(2, firstRound.Count(k => k == "Bearer pool-key-1"));
        Assert.Equal(2, firstRound.Count(k => k == "Bearer pool-key-2"));
        Assert.Equal(2, firstRound.Count(k => k == "Bearer pool-key-3"));

        // The provider refuses key 2 (429): that request is retried with the next key, and key 2 rests.
        platform.Llm.RejectKey("pool-key-2", 429);
        for (var i = 0; i < 6; i++)
            Assert.Equal(HttpStatusCode.OK, (await client.ExecuteAsync(new { task = $"pooled again {i}", agent_type = name })).StatusCode);
        var secondRound = platform.Llm.CallsForModel(model).Skip(6).Select(c => c.Authorization).ToList();

        Assert.True(secondRound.Count(k => k == "Bearer pool-key-2") <= 1, string.Join(", ", secondRound));
        Assert.True(secondRound.Count(k => k == "Bearer pool-key-1") >= 3);
        Assert.True(secondRound.Count(k => k == "Bearer pool-key-3") >= 3);
    }
}
