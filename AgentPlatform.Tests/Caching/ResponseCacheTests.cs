using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using AgentPlatform.Tests.Infrastructure;
using AgentPlatform.Tests.Tools;
using Npgsql;
using StackExchange.Redis;

namespace AgentPlatform.Tests.Caching;

/// <summary>
/// The response cache end to end: real Redis (exact tier), the embedded vector store on real Postgres (semantic tier), the
/// LLM double counting the calls that reach the model. The fixture turns caching off by default (Cache__Enabled=false), so
/// each test's agent turns it on with cache.enabled, on its own model: the double's calls for that model are this test's.
/// </summary>
/// <remarks>
/// Semantic prompts are chosen for the embedding in use, the double's (the platform's local embedding: stemmed words and
/// character 4-grams, stop words ignored): "Please explain how photosynthesis works in green plants?" scores 1.0 against
/// "Explain how photosynthesis works in green plants", "Explain photosynthesis in green plants" 0.877, and
/// "Explain how respiration works in green plants" 0.785.
/// </remarks>
[Collection(PlatformCollection.Name)]
public sealed class ResponseCacheTests(PlatformFixture platform) : IAsyncLifetime
{
    private const string Photosynthesis = "Explain how photosynthesis works in green plants";
    private const string Paraphrase = "Please explain how photosynthesis works in green plants?";
    private const string Shorter = "Explain photosynthesis in green plants";

    private readonly List<string> _agents = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        var admin = platform.Client(PlatformFixture.AdminKey);
        foreach (var agent in _agents) await admin.DeleteAsync($"/admin/agents/{agent}");
    }

    /// <summary>A new agent on a model of its own, priced so that its answers cost something; caching on unless <paramref name="cache"/> says otherwise.</summary>
    private async Task<(string Name, string Model)> AgentAsync(object? cache = null, float? temperature = null, string[]? tools = null)
    {
        var name = TestNames.Unique("cached");
        var model = TestNames.Unique("cache-model");
        using var put = await platform.Client(PlatformFixture.AdminKey).PutAsJsonAsync($"/admin/agents/{name}", new
        {
            description = "An agent whose answers are cached.",
            system_prompt = "You answer briefly.",
            models = new[] { new { provider = "default", model, input_per_1k = 0.001m, output_per_1k = 0.002m, cost_tier = 1 } },
            temperature,
            tools = tools ?? [],
            cache = cache ?? new { enabled = true },
        });
        Assert.True(put.IsSuccessStatusCode, await put.Content.ReadAsStringAsync());
        _agents.Add(name);
        return (name, model);
    }

    private int ModelCalls(string model) => platform.Llm.CallsForModel(model).Count;

    private static string XCache(HttpResponseMessage response) => response.Headers.GetValues("X-Cache").Single();

    private static async Task<(HttpResponseMessage Response, JsonObject Body)> ExecuteAsync(HttpClient client, object body,
        string? cacheControl = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/agent/execute") { Content = JsonContent.Create(body) };
        if (cacheControl is not null) request.Headers.Add("Cache-Control", cacheControl);
        var response = await client.SendAsync(request);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return (response, await response.JsonAsync());
    }

    [Fact]
    public async Task A_second_identical_request_is_answered_from_the_exact_cache_without_calling_the_model_and_costs_nothing()
    {
        var (agent, model) = await AgentAsync();
        var (key, keyId) = await ToolsApiTests.CreateKeyAsync(platform, null);
        var client = platform.Client(key);

        var (firstResponse, first) = await ExecuteAsync(client, new { task = "What is the boiling point of water at sea level?", agent_type = agent });
        var (secondResponse, second) = await ExecuteAsync(client, new { task = "What is the boiling point of water at sea level?", agent_type = agent });
        var (thirdResponse, _) = await ExecuteAsync(client, new { task = "  What is the boiling point of water at sea level?\n", agent_type = agent });

        Assert.Equal(1, ModelCalls(model));
        Assert.Equal("MISS", XCache(firstResponse));
        Assert.False(first["cached"]!.GetValue<bool>());
        Assert.Equal("miss", first["cache"]!.GetValue<string>());
        Assert.True(first["cost_usd"]!.GetValue<decimal>() > 0);

        Assert.Equal("HIT", XCache(secondResponse));
        Assert.True(second["cached"]!.GetValue<bool>());
        Assert.Equal("exact", second["cache"]!.GetValue<string>());
        Assert.Equal(first["result"]!.GetValue<string>(), second["result"]!.GetValue<string>());
        Assert.Equal(0m, second["cost_usd"]!.GetValue<decimal>());
        Assert.Equal(0, second["usage"]!["total_tokens"]!.GetValue<int>());
        Assert.Equal(first["model"]!.GetValue<string>(), second["model"]!.GetValue<string>());
        // Surrounding whitespace is not part of the prompt.
        Assert.Equal("HIT", XCache(thirdResponse));

        // The task row says so too, and the entry counts its hits.
        var status = await client.StatusAsync(second["task_id"]!.GetValue<string>());
        Assert.True(status["cached"]!.GetValue<bool>());
        Assert.Equal("exact", status["cache"]!.GetValue<string>());
        Assert.Equal(0m, status["cost_usd"]!.GetValue<decimal>());
        Assert.False((await client.StatusAsync(first["task_id"]!.GetValue<string>()))["cached"]!.GetValue<bool>());
        await using var redis = await ConnectionMultiplexer.ConnectAsync(platform.Redis.ConnectionString);
        var entry = Assert.Single(redis.GetServers()[0].Keys(pattern: $"cache:{keyId:N}:*"));
        Assert.Equal(2, (int)await redis.GetDatabase().HashGetAsync(entry, "hits"));
        Assert.True(await redis.GetDatabase().KeyTimeToLiveAsync(entry) is { } ttl && ttl <= TimeSpan.FromHours(1) && ttl > TimeSpan.FromMinutes(59));

        // The usage ledger has the served answer as a row at cost 0, marked as an exact hit.
        var hitTask = Guid.Parse(second["task_id"]!.GetValue<string>());
        await HttpExtensions.WaitUntilAsync(async () =>
        {
            await using var db = new Npgsql.NpgsqlConnection(platform.DatabaseConnectionString);
            await db.OpenAsync();
            await using var query = new Npgsql.NpgsqlCommand(
                """SELECT count(*) FROM usage_ledger WHERE "TaskId" = @task AND "CacheOutcome" = 'exact' AND "CostUsd" = 0""", db);
            query.Parameters.AddWithValue("task", hitTask);
            return (long)(await query.ExecuteScalarAsync())! == 1;
        }, seconds: 10, what: "the cache hit's ledger row");
    }

    [Fact]
    public async Task Another_key_gets_its_own_answer_unless_the_agent_shares_its_cache()
    {
        var (privateAgent, privateModel) = await AgentAsync();
        var (sharedAgent, sharedModel) = await AgentAsync(new { enabled = true, shared = true });
        var alice = platform.Client(await platform.CreateKeyAsync());
        var bob = platform.Client(await platform.CreateKeyAsync());

        await ExecuteAsync(alice, new { task = "Name the largest planet.", agent_type = privateAgent });
        var (bobsPrivate, _) = await ExecuteAsync(bob, new { task = "Name the largest planet.", agent_type = privateAgent });
        await ExecuteAsync(alice, new { task = "Name the largest planet.", agent_type = sharedAgent });
        var (bobsShared, shared) = await ExecuteAsync(bob, new { task = "Name the largest planet.", agent_type = sharedAgent });
        var (bobsSharedParaphrase, _) = await ExecuteAsync(bob, new { task = "Name the planet that is largest", agent_type = sharedAgent });

        Assert.Equal("MISS", XCache(bobsPrivate));
        Assert.Equal(2, ModelCalls(privateModel));
        Assert.Equal("HIT", XCache(bobsShared));
        Assert.True(shared["cached"]!.GetValue<bool>());
        Assert.Equal("SEMANTIC", XCache(bobsSharedParaphrase));
        Assert.Equal(1, ModelCalls(sharedModel));
    }

    [Fact]
    public async Task A_no_cache_header_or_cache_false_in_the_body_gets_a_fresh_answer_that_is_not_stored()
    {
        var (agent, model) = await AgentAsync();
        var client = platform.Client(await platform.CreateKeyAsync());
        var body = new { task = "List three primary colours.", agent_type = agent };

        var (header, headerBody) = await ExecuteAsync(client, body, cacheControl: "no-cache");
        var (noStore, _) = await ExecuteAsync(client, body, cacheControl: "no-store");
        var (flag, flagBody) = await ExecuteAsync(client, new { task = "List three primary colours.", agent_type = agent, cache = false });
        Assert.Equal(3, ModelCalls(model));
        // Nothing was stored by the bypassing requests: the first plain one asks the model, the next is a hit.
        var (plain, _) = await ExecuteAsync(client, body);
        var (again, _) = await ExecuteAsync(client, body);
        var (afterHit, _) = await ExecuteAsync(client, body, cacheControl: "no-cache");
        using var invalid = await client.PostAsJsonAsync("/agent/execute", new { task = "List three primary colours.", agent_type = agent, cache = "no" });

        Assert.Equal(["MISS", "MISS", "MISS", "MISS", "HIT", "MISS"], new[] { header, noStore, flag, plain, again, afterHit }.Select(XCache));
        Assert.Equal("bypass", headerBody["cache"]!.GetValue<string>());
        Assert.Equal("bypass", flagBody["cache"]!.GetValue<string>());
        Assert.Equal(5, ModelCalls(model));
        Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
        Assert.True((await invalid.JsonAsync())["errors"]!.AsObject().ContainsKey("cache"));
    }

    [Fact]
    public async Task Runs_above_the_temperature_bound_or_offering_tools_with_side_effects_are_never_cached()
    {
        var (hot, hotModel) = await AgentAsync(temperature: 0.9f);
        var (remembering, rememberingModel) = await AgentAsync(tools: ["remember"]);
        var (clock, clockModel) = await AgentAsync(tools: ["current_time"]);
        var (calculating, calculatingModel) = await AgentAsync(tools: ["calculator"], temperature: 0.5f);
        var (plain, plainModel) = await AgentAsync();
        var client = platform.Client(await platform.CreateKeyAsync());

        var outcomes = new Dictionary<string, List<string>>();
        foreach (var agent in new[] { hot, remembering, clock, calculating })
        {
            for (var i = 0; i < 2; i++)
                (outcomes.TryGetValue(agent, out var list) ? list : outcomes[agent] = []).Add(
                    (await ExecuteAsync(client, new { task = "What is 6 times 7?", agent_type = agent })).Body["cache"]!.GetValue<string>());
        }
        // A client's temperature counts the same as the agent's (the OpenAI-compatible API passes it on).
        var completions = new List<HttpResponseMessage>();
        foreach (var temperature in new[] { 1.0, 1.0, 0.2, 0.2 })
        {
            completions.Add(await client.PostAsJsonAsync("/v1/chat/completions",
                new { model = plain, temperature, messages = new[] { new { role = "user", content = "What is 6 times 7?" } } }));
        }

        Assert.Equal(["skipped", "skipped"], outcomes[hot]);
        Assert.Equal(["skipped", "skipped"], outcomes[remembering]);
        Assert.Equal(["skipped", "skipped"], outcomes[clock]);
        Assert.Equal(["miss", "exact"], outcomes[calculating]);
        Assert.Equal((2, 2, 2, 1), (ModelCalls(hotModel), ModelCalls(rememberingModel), ModelCalls(clockModel), ModelCalls(calculatingModel)));
        Assert.Equal(["MISS", "MISS", "MISS", "HIT"], completions.Select(XCache));
        Assert.Equal(3, ModelCalls(plainModel));
    }

    [Fact]
    public async Task An_answer_expires_after_the_agents_ttl_in_both_tiers_and_expired_points_are_purged()
    {
        var (agent, model) = await AgentAsync(new { enabled = true, ttl_seconds = 1 });
        var client = platform.Client(await platform.CreateKeyAsync());

        await ExecuteAsync(client, new { task = Photosynthesis, agent_type = agent });
        var (hit, _) = await ExecuteAsync(client, new { task = Photosynthesis, agent_type = agent });
        await Task.Delay(TimeSpan.FromMilliseconds(1500));
        var (exactAfterExpiry, _) = await ExecuteAsync(client, new { task = Photosynthesis, agent_type = agent });
        await Task.Delay(TimeSpan.FromMilliseconds(1500));
        // The paraphrase's search finds the expired point (and deletes it): no semantic hit after the TTL either.
        var (paraphraseAfterExpiry, _) = await ExecuteAsync(client, new { task = Paraphrase, agent_type = agent });
        await Task.Delay(TimeSpan.FromMilliseconds(1500));
        // An unrelated prompt's store deletes the expired points of its group that no search will find any more.
        var (unrelated, _) = await ExecuteAsync(client, new { task = "Explain how respiration works in green plants", agent_type = agent });

        Assert.Equal(["HIT", "MISS", "MISS", "MISS"], new[] { hit, exactAfterExpiry, paraphraseAfterExpiry, unrelated }.Select(XCache));
        Assert.Equal(4, ModelCalls(model));
        await using var db = NpgsqlDataSource.Create(platform.DatabaseConnectionString);
        await using var count = db.CreateCommand("""SELECT count(*) FROM vector_points WHERE "Payload"->>'agents' = $1""");
        count.Parameters.Add(new NpgsqlParameter { Value = agent });
        Assert.Equal(1L, await count.ExecuteScalarAsync());
    }

    [Fact]
    public async Task A_paraphrase_above_the_threshold_is_served_from_the_semantic_cache_and_one_below_it_is_not()
    {
        var (agent, model) = await AgentAsync();
        var (lenient, lenientModel) = await AgentAsync(new { enabled = true, semantic_threshold = 0.85 });
        var (literal, literalModel) = await AgentAsync(new { enabled = true, semantic = false });
        var client = platform.Client(await platform.CreateKeyAsync());
        var stranger = platform.Client(await platform.CreateKeyAsync());

        var (_, original) = await ExecuteAsync(client, new { task = Photosynthesis, agent_type = agent });
        var (paraphraseResponse, paraphrase) = await ExecuteAsync(client, new { task = Paraphrase, agent_type = agent });
        var (shorterResponse, _) = await ExecuteAsync(client, new { task = Shorter, agent_type = agent });
        var (strangerResponse, _) = await ExecuteAsync(stranger, new { task = Paraphrase, agent_type = agent });
        var (withContextResponse, _) = await ExecuteAsync(client, new { task = Paraphrase, agent_type = agent, context = new { audience = "children" } });

        Assert.Equal("SEMANTIC", XCache(paraphraseResponse));
        Assert.True(paraphrase["cached"]!.GetValue<bool>());
        Assert.Equal("semantic", paraphrase["cache"]!.GetValue<string>());
        Assert.Equal(original["result"]!.GetValue<string>(), paraphrase["result"]!.GetValue<string>());
        Assert.Equal(0m, paraphrase["cost_usd"]!.GetValue<decimal>());
        Assert.Equal("semantic", (await client.StatusAsync(paraphrase["task_id"]!.GetValue<string>()))["cache"]!.GetValue<string>());
        Assert.Equal("MISS", XCache(shorterResponse));          // 0.877 < 0.95
        Assert.Equal("MISS", XCache(strangerResponse));         // another key's entries are not searched
        Assert.Equal("MISS", XCache(withContextResponse));      // everything but the new message must match exactly
        Assert.Equal(4, ModelCalls(model));

        // An agent's own threshold: 0.85 serves the shorter prompt; semantic: false serves identical prompts only.
        await ExecuteAsync(client, new { task = Photosynthesis, agent_type = lenient });
        var (lenientShorter, _) = await ExecuteAsync(client, new { task = Shorter, agent_type = lenient });
        await ExecuteAsync(client, new { task = Photosynthesis, agent_type = literal });
        var (literalParaphrase, _) = await ExecuteAsync(client, new { task = Paraphrase, agent_type = literal });
        var (literalSame, _) = await ExecuteAsync(client, new { task = Photosynthesis, agent_type = literal });
        Assert.Equal("SEMANTIC", XCache(lenientShorter));
        Assert.Equal(1, ModelCalls(lenientModel));
        Assert.Equal(["MISS", "HIT"], new[] { literalParaphrase, literalSame }.Select(XCache));
        Assert.Equal(2, ModelCalls(literalModel));
    }

    [Fact]
    public async Task A_group_keeps_at_most_the_configured_number_of_semantic_entries_and_the_exact_tier_keeps_them_all()
    {
        var api = platform.StartExtraApi(overrides: new Dictionary<string, string> { ["Cache__SemanticMaxEntries"] = "2" });
        var (agent, model) = await AgentAsync();
        var client = PlatformFixture.ClientFor(api, await platform.CreateKeyAsync());
        const string revolution = "Summarize the causes of the French revolution";

        foreach (var prompt in new[] { Photosynthesis, "Describe the water cycle in nature", revolution })
            Assert.Equal("MISS", XCache((await ExecuteAsync(client, new { task = prompt, agent_type = agent })).Response));
        var (evicted, _) = await ExecuteAsync(client, new { task = Paraphrase, agent_type = agent });
        var (kept, _) = await ExecuteAsync(client, new { task = "Please summarize the causes of the French revolution?", agent_type = agent });
        var (exact, _) = await ExecuteAsync(client, new { task = Photosynthesis, agent_type = agent });

        Assert.Equal(["MISS", "SEMANTIC", "HIT"], new[] { evicted, kept, exact }.Select(XCache));
        Assert.Equal(4, ModelCalls(model));
        await using var db = NpgsqlDataSource.Create(platform.DatabaseConnectionString);
        await using var count = db.CreateCommand("""SELECT count(*) FROM vector_points WHERE "Payload"->>'agents' = $1""");
        count.Parameters.Add(new NpgsqlParameter { Value = agent });
        Assert.Equal(2L, await count.ExecuteScalarAsync());
    }

    [Fact]
    public async Task Streaming_chat_turns_and_streamed_completions_are_replayed_from_either_cache()
    {
        var (agent, model) = await AgentAsync();
        var client = platform.Client(await platform.CreateKeyAsync());

        var (firstStream, firstEvents) = await ChatStreamAsync(client, new { message = Photosynthesis, agent_type = agent });
        var (exactStream, exactEvents) = await ChatStreamAsync(client, new { message = Photosynthesis, agent_type = agent });
        var (semanticStream, semanticEvents) = await ChatStreamAsync(client, new { message = Paraphrase, agent_type = agent });
        // The OpenAI-compatible API sends the same messages (system prompt, then the user's): the same entry serves it.
        var (completionStream, chunks) = await CompletionStreamAsync(client, new
        {
            model = agent, stream = true, stream_options = new { include_usage = true },
            messages = new[] { new { role = "user", content = Photosynthesis } },
        });
        var (paraphraseStream, paraphraseChunks) = await CompletionStreamAsync(client, new
        {
            model = agent, stream = true, messages = new[] { new { role = "user", content = Paraphrase } },
        });

        Assert.Equal(1, ModelCalls(model));
        var answer = Text(firstEvents);
        Assert.StartsWith("double answer to: ", answer);
        Assert.Equal(["MISS", "HIT", "SEMANTIC", "HIT", "SEMANTIC"],
            new[] { firstStream, exactStream, semanticStream, completionStream, paraphraseStream }.Select(XCache));
        foreach (var events in new[] { exactEvents, semanticEvents })
        {
            Assert.Equal(answer, Text(events));
            Assert.True(events.Count(e => e.Type == "delta") > 1, "replayed in several chunks");
            var done = events[^1];
            Assert.Equal("done", done.Type);
            Assert.True(done.Data["cached"]!.GetValue<bool>());
            Assert.Equal(0, done.Data["usage"]!["total_tokens"]!.GetValue<int>());
        }
        foreach (var replayed in new[] { chunks, paraphraseChunks })
        {
            Assert.Equal("[DONE]", replayed[^1]);
            var objects = replayed.SkipLast(1).Select(c => JsonNode.Parse(c)!.AsObject()).ToList();
            Assert.Equal(answer, string.Concat(objects.SelectMany(o => o["choices"]!.AsArray())
                .Select(c => c!["delta"]?["content"]?.GetValue<string>() ?? "")));
            Assert.Contains(objects, o => o["choices"]!.AsArray().Any(c => c!["finish_reason"]?.GetValue<string>() == "stop"));
            Assert.Contains(objects, o => o["agent_platform"]?["cached"]?.GetValue<bool>() == true);
        }
        Assert.Contains(chunks.SkipLast(1).Select(c => JsonNode.Parse(c)!), o => o["usage"]?["total_tokens"]?.GetValue<int>() == 0);
    }

    [Fact]
    public async Task A_chat_turn_served_from_the_cache_is_kept_in_its_session_and_another_history_does_not_hit()
    {
        var (agent, model) = await AgentAsync();
        var client = platform.Client(await platform.CreateKeyAsync());

        var first = await ChatAsync(client, new { message = Photosynthesis, agent_type = agent });
        var second = await ChatAsync(client, new { message = Photosynthesis, agent_type = agent });
        var session = second.Body["session_id"]!.GetValue<string>();
        var history = await (await client.GetAsync($"/agent/conversations/{session}")).JsonAsync();

        Assert.Equal(["MISS", "HIT"], new[] { first.Response, second.Response }.Select(XCache));
        Assert.True(second.Body["cached"]!.GetValue<bool>());
        Assert.NotEqual(first.Body["session_id"]!.GetValue<string>(), session);
        Assert.Equal(["user", "assistant"], history["messages"]!.AsArray().Select(m => m!["role"]!.GetValue<string>()));
        Assert.Equal(Photosynthesis, history["messages"]![0]!["content"]!.GetValue<string>());
        Assert.Equal(first.Body["reply"]!.GetValue<string>(), history["messages"]![1]!["content"]!.GetValue<string>());

        // The same follow-up after the same history is the same prompt; after another history it is not, not even semantically.
        var followUp = await ChatAsync(client, new { message = "And at night?", session_id = session, agent_type = agent });
        var sameHistory = await ChatAsync(client, new { message = "And at night?", session_id = first.Body["session_id"]!.GetValue<string>(), agent_type = agent });
        var other = await ChatAsync(client, new { message = "Explain how respiration works in green plants", agent_type = agent });
        var otherFollowUp = await ChatAsync(client, new { message = "And at night?", session_id = other.Body["session_id"]!.GetValue<string>(), agent_type = agent });

        Assert.Equal(["MISS", "HIT", "MISS", "MISS"], new[] { followUp.Response, sameHistory.Response, other.Response, otherFollowUp.Response }.Select(XCache));
        Assert.Equal(4, ModelCalls(model));
        var sameHistoryMessages = (await (await client.GetAsync($"/agent/conversations/{first.Body["session_id"]}")).JsonAsync())["messages"]!.AsArray();
        Assert.Equal(4, sameHistoryMessages.Count);
        Assert.Equal(followUp.Body["reply"]!.GetValue<string>(), sameHistoryMessages[3]!["content"]!.GetValue<string>());
    }

    [Fact]
    public async Task An_answer_the_worker_produced_serves_a_sync_request_in_the_api()
    {
        var (agent, model) = await AgentAsync();
        var client = platform.Client(await platform.CreateKeyAsync());

        var accepted = await (await client.ExecuteAsync(new { task = Photosynthesis, agent_type = agent, async_execution = true })).JsonAsync();
        var done = await client.WaitForFinalAsync(accepted["task_id"]!.GetValue<string>());
        var (response, sync) = await ExecuteAsync(client, new { task = Photosynthesis, agent_type = agent });

        Assert.Equal("completed", done["status"]!.GetValue<string>());
        Assert.Equal("miss", done["cache"]!.GetValue<string>());
        Assert.Equal("HIT", XCache(response));
        Assert.Equal(done["result"]!.GetValue<string>(), sync["result"]!.GetValue<string>());
        Assert.Equal(1, ModelCalls(model));
    }

    [Fact]
    public async Task Hits_misses_and_the_cost_saved_are_in_the_metrics()
    {
        var (agent, _) = await AgentAsync();
        var client = platform.Client(await platform.CreateKeyAsync());
        var (_, first) = await ExecuteAsync(client, new { task = Photosynthesis, agent_type = agent });
        await ExecuteAsync(client, new { task = Photosynthesis, agent_type = agent });
        await ExecuteAsync(client, new { task = Paraphrase, agent_type = agent });

        var admin = platform.Client(PlatformFixture.AdminKey);
        string metrics = "";
        await HttpExtensions.WaitUntilAsync(async () =>
        {
            metrics = await admin.GetStringAsync("/metrics");
            return Lines(metrics, "agent_cost_saved_usd_total", agent).Any();
        }, what: "the cache metrics of the agent");

        Assert.Equal(1, Value(Lines(metrics, "agent_cache_hits_total", agent).Single(l => l.Contains("tier=\"exact\""))));
        Assert.Equal(1, Value(Lines(metrics, "agent_cache_hits_total", agent).Single(l => l.Contains("tier=\"semantic\""))));
        Assert.Equal(1, Value(Lines(metrics, "agent_cache_misses_total", agent).Single()));
        // Each hit saved what the first answer cost.
        Assert.Equal((double)first["cost_usd"]!.GetValue<decimal>() * 2, Value(Lines(metrics, "agent_cost_saved_usd_total", agent).Single()), 9);

        static IEnumerable<string> Lines(string text, string metric, string agent) =>
            text.Split('\n').Where(l => l.StartsWith(metric + "{", StringComparison.Ordinal) && l.Contains($"agent=\"{agent}\""));
        // "name{labels} value [timestamp]"
        static double Value(string line) =>
            double.Parse(line[(line.LastIndexOf('}') + 2)..].Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task An_agents_cache_settings_are_checked_naming_the_field()
    {
        var admin = platform.Client(PlatformFixture.AdminKey);
        var name = TestNames.Unique("badcache");
        using var response = await admin.PutAsJsonAsync($"/admin/agents/{name}", new
        {
            description = "An agent with bad cache settings.", system_prompt = "You answer.",
            cache = new { ttl_seconds = 0, semantic_threshold = 1.5 },
        });
        using var nullCache = await admin.PutAsJsonAsync($"/admin/agents/{name}",
            new { description = "An agent with bad cache settings.", system_prompt = "You answer.", cache = (object?)null });

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var errors = (await response.JsonAsync())["errors"]!.AsObject();
        Assert.True(errors.ContainsKey("cache.ttl_seconds"), errors.ToJsonString());
        Assert.True(errors.ContainsKey("cache.semantic_threshold"), errors.ToJsonString());
        Assert.Equal(HttpStatusCode.BadRequest, nullCache.StatusCode);
        Assert.True((await nullCache.JsonAsync())["errors"]!.AsObject().ContainsKey("cache"));
    }

    [Fact]
    public async Task With_the_default_settings_agents_cache_unless_they_offer_tools_with_side_effects()
    {
        // An Api with the platform's defaults (Cache:Enabled true): an agent that says nothing caches, as does the built-in
        // code agent (temperature 0.2, calculator); the general agent offers current_time and my_tasks, so it does not.
        var api = platform.StartExtraApi(overrides: new Dictionary<string, string> { ["Cache__Enabled"] = "true" });
        var (agent, model) = await AgentAsync(new { });
        var client = PlatformFixture.ClientFor(api, await platform.CreateKeyAsync());
        var marker = TestNames.Unique("defaults");
        platform.Llm.Script(marker, new LlmStep(Content: "HyperText Transfer Protocol."));

        var outcomes = new List<string>();
        foreach (var target in new[] { agent, agent, "code", "code", "general", "general" })
        {
            var (response, _) = await ExecuteAsync(client, new { task = $"{marker} What does HTTP stand for?", agent_type = target });
            outcomes.Add(XCache(response));
        }

        Assert.Equal(["MISS", "HIT", "MISS", "HIT", "MISS", "MISS"], outcomes);
        Assert.Equal(1, ModelCalls(model));
        Assert.Equal(4, platform.Llm.CallsFor(marker).Count(c => !c.Completed)); // the new agent once, code once, general twice
    }

    [Fact]
    public async Task With_qdrant_configured_the_semantic_cache_keeps_its_points_in_qdrant()
    {
        await using var qdrant = await QdrantDouble.StartAsync();
        var api = platform.StartExtraApi(overrides: new Dictionary<string, string>
        {
            ["ConnectionStrings__qdrant"] = qdrant.ConnectionString("qdrant-secret"),
        });
        var (agent, model) = await AgentAsync();
        var client = PlatformFixture.ClientFor(api, await platform.CreateKeyAsync());
        var stranger = PlatformFixture.ClientFor(api, await platform.CreateKeyAsync());

        var (first, _) = await ExecuteAsync(client, new { task = Photosynthesis, agent_type = agent });
        var (paraphrase, body) = await ExecuteAsync(client, new { task = Paraphrase, agent_type = agent });
        var (strangers, _) = await ExecuteAsync(stranger, new { task = Paraphrase, agent_type = agent });
        var (shorter, _) = await ExecuteAsync(client, new { task = Shorter, agent_type = agent });

        Assert.Equal(["MISS", "SEMANTIC", "MISS", "MISS"], new[] { first, paraphrase, strangers, shorter }.Select(XCache));
        Assert.True(body["cached"]!.GetValue<bool>());
        Assert.Equal(3, ModelCalls(model));
        var collection = $"cache_{PlatformFixture.EmbeddingModel}_1024";
        Assert.Contains(collection, qdrant.CollectionNames);
        Assert.Equal(3, qdrant.PointCount(collection));
        Assert.Contains("scope", qdrant.IndexesOf(collection).Keys);
        Assert.Contains("context", qdrant.IndexesOf(collection).Keys);
        Assert.Contains(qdrant.Calls, call => call == ("qdrant.Points/Query", "qdrant-secret"));
        // ... and Postgres has none of them.
        await using var db = NpgsqlDataSource.Create(platform.DatabaseConnectionString);
        await using var count = db.CreateCommand("""SELECT count(*) FROM vector_points WHERE "Payload"->>'agents' = $1""");
        count.Parameters.Add(new NpgsqlParameter { Value = agent });
        Assert.Equal(0L, await count.ExecuteScalarAsync());
    }

    private static string Text(List<ServerEvent> events) =>
        string.Concat(events.Where(e => e.Type == "delta").Select(e => e.Data["text"]!.GetValue<string>()));

    private sealed record ServerEvent(string Type, JsonObject Data);

    private static async Task<(HttpResponseMessage Response, JsonObject Body)> ChatAsync(HttpClient client, object body)
    {
        var response = await client.PostAsJsonAsync("/agent/chat", body);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return (response, await response.JsonAsync());
    }

    private static async Task<(HttpResponseMessage Response, List<ServerEvent> Events)> ChatStreamAsync(HttpClient client, object body)
    {
        var response = await client.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/agent/chat/stream") { Content = JsonContent.Create(body) },
            HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = new List<ServerEvent>();
        string? type = null;
        foreach (var line in (await response.Content.ReadAsStringAsync()).Split('\n'))
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal)) type = line["event: ".Length..];
            else if (line.StartsWith("data: ", StringComparison.Ordinal)) events.Add(new ServerEvent(type ?? "message", JsonNode.Parse(line["data: ".Length..])!.AsObject()));
        }
        return (response, events);
    }

    private static async Task<(HttpResponseMessage Response, List<string> Data)> CompletionStreamAsync(HttpClient client, object body)
    {
        var response = await client.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = JsonContent.Create(body) },
            HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var data = (await response.Content.ReadAsStringAsync()).Split('\n')
            .Where(l => l.StartsWith("data: ", StringComparison.Ordinal)).Select(l => l["data: ".Length..]).ToList();
        return (response, data);
    }
}
