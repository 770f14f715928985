using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using AgentPlatform.Tests.Infrastructure;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace AgentPlatform.Tests.Admission;

/// <summary>Token limits and daily budgets held across Api instances and the Worker, under concurrency.</summary>
[Collection(PlatformCollection.Name)]
public sealed class SpendLimitTests(PlatformFixture platform, ITestOutputHelper output)
{
    // The agent's model: $0.01 per 1K input tokens, $0.03 per 1K output; replies capped at 100 tokens. The double answers
    // with 10 prompt + 100 completion tokens ($0.0031), within what the platform reserves (its prompt count + 100).
    private const decimal InputPer1K = 0.01m, OutputPer1K = 0.03m;
    private const decimal CallCost = (10 * InputPer1K + 100 * OutputPer1K) / 1000m;

    private HttpClient Admin => platform.Client(PlatformFixture.AdminKey);

    private async Task<string> PricedAgentAsync(decimal? dailyBudgetUsd = null, int delayMs = 300)
    {
        var name = TestNames.Unique("priced");
        var model = TestNames.Unique("priced-model");
        var put = await Admin.PutAsJsonAsync($"/admin/agents/{name}", new
        {
            description = "An agent on a priced model.",
            system_prompt = "You are brief.",
            keywords = new[] { "zzpriced" },
            models = new[] { new { provider = "default", model, input_per_1k = InputPer1K, output_per_1k = OutputPer1K, cost_tier = 1 } },
            max_output_tokens = 100,
            daily_budget_usd = dailyBudgetUsd,
        });
        Assert.True(put.IsSuccessStatusCode, await put.Content.ReadAsStringAsync());
        platform.Llm.ScriptModel(model, new LlmStep(Delay: TimeSpan.FromMilliseconds(delayMs), Content: "ok", PromptTokens: 10, CompletionTokens: 100));
        return name;
    }

    /// <summary>A second Api instance, once its Redis connection is up (a fresh instance refuses limited work until then: 503).</summary>
    private async Task<HttpClient> SecondInstanceAsync(string key)
    {
        var api = platform.StartExtraApi();
        await HttpExtensions.WaitUntilAsync(async () =>
            (await PlatformFixture.ClientFor(api, null).GetFromJsonAsync<JsonObject>("/health"))!["checks"]!["redis"]!.GetValue<string>() == "healthy",
            seconds: 20, what: "the second instance's Redis connection");
        // One request through it first: its pools and caches warm, as on a replica that has served traffic.
        Assert.True((await PlatformFixture.ClientFor(api, PlatformFixture.AdminKey).GetAsync("/agent/conversations")).IsSuccessStatusCode);
        return PlatformFixture.ClientFor(api, key);
    }

    private async Task<(string Key, Guid Id)> KeyAsync(object body)
    {
        var response = await Admin.PostAsJsonAsync("/admin/keys", body);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var created = await response.JsonAsync();
        return (created["key"]!.GetValue<string>(), Guid.Parse(created["id"]!.GetValue<string>()));
    }

    [Fact]
    public async Task A_hundred_concurrent_requests_on_two_instances_overshoot_a_small_budget_by_at_most_one_reservation()
    {
        var agent = await PricedAgentAsync();
        const decimal budget = 0.02m;
        var (key, _) = await KeyAsync(new { name = "budget", tier = "enterprise", daily_budget_usd = budget });
        var first = platform.Client(key);
        var second = await SecondInstanceAsync(key);

        var responses = await Task.WhenAll(Enumerable.Range(0, 100).Select(i =>
            (i % 2 == 0 ? first : second).ExecuteAsync(new { task = $"budget run {i}", agent_type = agent })));

        var completed = responses.Where(r => r.StatusCode == HttpStatusCode.OK).ToList();
        var refused = responses.Where(r => r.StatusCode == HttpStatusCode.TooManyRequests).ToList();
        var other = responses.Where(r => r.StatusCode is not (HttpStatusCode.OK or HttpStatusCode.TooManyRequests)).ToList();
        Assert.True(other.Count == 0, $"{other.Count} other answers, e.g. {(int?)other.FirstOrDefault()?.StatusCode}: " +
            (other.Count > 0 ? await other[0].Content.ReadAsStringAsync() : ""));
        var spent = (await Task.WhenAll(completed.Select(r => r.JsonAsync()))).Sum(b => b["cost_usd"]!.GetValue<decimal>());
        // Without the gate all 100 would have run: $0.31 on a $0.02 budget.
        output.WriteLine($"budget ${budget}: {completed.Count} of 100 ran, spent ${spent}, {refused.Count} refused (429)");
        Assert.InRange(completed.Count, 1, 10);
        Assert.True(spent <= budget + CallCost * 1.2m, $"spent {spent} of {budget} with {completed.Count} runs");
        var problem = await refused[0].JsonAsync();
        Assert.Equal("budget", problem["limit"]!.GetValue<string>());
        Assert.Contains("Daily budget", problem["detail"]!.GetValue<string>());
        Assert.NotNull(refused[0].Headers.RetryAfter);
        // The refused requests never reached the model.
        Assert.Equal(completed.Count, platform.Llm.Calls.Count(c => !c.Completed && c.UserMessage.StartsWith("budget run ")));
    }

    [Fact]
    public async Task A_token_burst_across_two_instances_never_admits_more_tokens_than_the_limit()
    {
        var agent = await PricedAgentAsync();
        const int limit = 2_000;
        var (key, _) = await KeyAsync(new { name = "tokens", tier = "enterprise", tpm_limit = limit });
        var first = platform.Client(key);
        var second = await SecondInstanceAsync(key);

        var responses = await Task.WhenAll(Enumerable.Range(0, 60).Select(i =>
            (i % 2 == 0 ? first : second).ExecuteAsync(new { task = $"token run {i}", agent_type = agent })));

        var admitted = responses.Where(r => r.StatusCode == HttpStatusCode.OK).ToList();
        var refused = responses.Where(r => r.StatusCode == HttpStatusCode.TooManyRequests).ToList();
        Assert.Equal(60, admitted.Count + refused.Count);
        // Each run reserves its prompt (~20 tokens) + 100 for the reply: about 16 fit in 2,000.
        Assert.InRange(admitted.Count, 8, limit / 110);
        var used = (await Task.WhenAll(admitted.Select(r => r.JsonAsync()))).Sum(b => b["usage"]!["total_tokens"]!.GetValue<int>());
        output.WriteLine($"limit {limit} tokens/min: {admitted.Count} of 60 admitted using {used} tokens, {refused.Count} refused (429)");
        Assert.True(used <= limit, $"{used} tokens admitted");
        var refusal = refused[0];
        Assert.Equal("tokens", (await refusal.JsonAsync())["limit"]!.GetValue<string>());
        Assert.Equal(limit.ToString(), refusal.Headers.GetValues("X-RateLimit-Limit-Tokens").Single());
        Assert.NotNull(refusal.Headers.RetryAfter);
        Assert.InRange(refusal.Headers.RetryAfter!.Delta!.Value.TotalSeconds, 1, 60);
    }

    [Fact]
    public async Task An_async_task_is_refused_by_the_budget_when_it_starts_in_the_worker()
    {
        var agent = await PricedAgentAsync(delayMs: 0);
        var (key, _) = await KeyAsync(new { name = "broke", tier = "enterprise", daily_budget_usd = 0.001m });
        var client = platform.Client(key);

        var accepted = await client.ExecuteAsync(new { task = "async over budget", agent_type = agent, async_execution = true });
        Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
        var final = await client.WaitForFinalAsync((await accepted.JsonAsync())["task_id"]!.GetValue<string>());

        Assert.Equal("failed", final["status"]!.GetValue<string>());
        Assert.Contains("Daily budget", final["error"]!.GetValue<string>());
        Assert.DoesNotContain(platform.Llm.Calls, c => c.UserMessage == "async over budget");
    }

    [Fact]
    public async Task An_agents_daily_cap_holds_across_keys()
    {
        var agent = await PricedAgentAsync(dailyBudgetUsd: 0.005m, delayMs: 0);
        var one = platform.Client(await platform.CreateKeyAsync());
        var other = platform.Client(await platform.CreateKeyAsync());

        Assert.Equal(HttpStatusCode.OK, (await one.ExecuteAsync(new { task = "cap one", agent_type = agent })).StatusCode);
        var second = await other.ExecuteAsync(new { task = "cap two", agent_type = agent });

        Assert.Equal(HttpStatusCode.TooManyRequests, second.StatusCode);
        var problem = await second.JsonAsync();
        Assert.Equal("agent_budget", problem["limit"]!.GetValue<string>());
        Assert.Contains(agent, problem["detail"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_budget_counter_lost_with_redis_is_rebuilt_from_recorded_spend_before_anything_is_admitted()
    {
        var agent = await PricedAgentAsync(delayMs: 0);
        var (key, id) = await KeyAsync(new { name = "rebuilt", tier = "enterprise", daily_budget_usd = 0.01m });
        var client = platform.Client(key);
        for (var i = 0; i < 3; i++) Assert.Equal(HttpStatusCode.OK, (await client.ExecuteAsync(new { task = $"spend {i}", agent_type = agent })).StatusCode);

        // Today's counters gone, as after a Redis restart without persistence.
        await using (var redis = await ConnectionMultiplexer.ConnectAsync(platform.Redis.ConnectionString + ",allowAdmin=true"))
            await redis.GetDatabase().KeyDeleteAsync(redis.GetServers().Single().Keys(pattern: $"spend:budget:{id:N}:*").ToArray());

        // /usage reports the key's own limits and what runs in flight have reserved (none now).
        var usage = await (await client.GetAsync("/usage")).JsonAsync();
        Assert.Equal(0.01m, usage["daily_budget_usd"]!.GetValue<decimal>());
        Assert.Equal(0.01m - 3 * CallCost, usage["budget_remaining_usd"]!.GetValue<decimal>());

        // $0.0093 spent: another run's reservation ($0.0032) no longer fits $0.01.
        var after = await client.ExecuteAsync(new { task = "spend again", agent_type = agent });
        Assert.Equal(HttpStatusCode.TooManyRequests, after.StatusCode);
        Assert.Equal("budget", (await after.JsonAsync())["limit"]!.GetValue<string>());
    }

    [Fact]
    public async Task Patching_a_keys_limits_applies_at_once_and_bad_patches_name_the_field()
    {
        var agent = await PricedAgentAsync(delayMs: 0);
        var (key, id) = await KeyAsync(new { name = "patched", tier = "enterprise" });
        var client = platform.Client(key);
        Assert.Equal(HttpStatusCode.OK, (await client.ExecuteAsync(new { task = "before patch", agent_type = agent })).StatusCode);

        var patched = await Admin.PatchAsJsonAsync($"/admin/keys/{id}", new { tpm_limit = 50 });
        Assert.Equal(HttpStatusCode.OK, patched.StatusCode);
        Assert.Equal(50, (await (await client.GetAsync("/usage")).JsonAsync())["tokens_per_minute"]!.GetValue<int>());
        Assert.Equal(50, (await patched.JsonAsync())["tpm_limit"]!.GetValue<int>());
        var refused = await client.ExecuteAsync(new { task = "after patch", agent_type = agent });
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Contains("more than the key's limit", (await refused.JsonAsync())["detail"]!.GetValue<string>());

        Assert.Equal(HttpStatusCode.OK, (await Admin.PatchAsync($"/admin/keys/{id}", JsonContent.Create(new JsonObject { ["tpm_limit"] = null }))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.ExecuteAsync(new { task = "cleared", agent_type = agent })).StatusCode);

        var bad = await Admin.PatchAsJsonAsync($"/admin/keys/{id}", new { rpm_limit = -3, colour = "red" });
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        var errors = (await bad.JsonAsync())["errors"]!;
        Assert.NotNull(errors["rpm_limit"]);
        Assert.NotNull(errors["colour"]);
        Assert.Equal(HttpStatusCode.NotFound, (await Admin.PatchAsJsonAsync($"/admin/keys/{Guid.NewGuid()}", new { rpm_limit = 5 })).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await client.PatchAsJsonAsync($"/admin/keys/{id}", new { rpm_limit = 5 })).StatusCode);
    }

    [Fact]
    public async Task Crossing_80_percent_of_the_budget_sends_one_signed_alert_per_day()
    {
        var agent = await PricedAgentAsync(delayMs: 0);
        var hook = TestNames.Unique("budget-alert");
        var (key, id) = await KeyAsync(new { name = "alerted", tier = "enterprise", daily_budget_usd = 0.013m, alert_webhook_url = platform.Llm.WebhookUrl(hook) });
        var client = platform.Client(key);

        for (var i = 0; i < 2; i++) Assert.Equal(HttpStatusCode.OK, (await client.ExecuteAsync(new { task = $"alert {i}", agent_type = agent })).StatusCode);
        await Task.Delay(1500);
        Assert.Empty(platform.Llm.DeliveriesFor(hook)); // $0.0062: 48 %
        for (var i = 2; i < 5; i++) await client.ExecuteAsync(new { task = $"alert {i}", agent_type = agent }); // 72 %, 95 %, then refused

        await HttpExtensions.WaitUntilAsync(() => Task.FromResult(platform.Llm.DeliveriesFor(hook).Count > 0), seconds: 20, what: "the budget alert");
        await Task.Delay(1500);
        var delivery = Assert.Single(platform.Llm.DeliveriesFor(hook), d => d.Body["percent"]!.GetValue<int>() == 80);
        Assert.Equal("budget.threshold", delivery.Body["event"]!.GetValue<string>());
        Assert.Equal(id.ToString(), delivery.Body["key_id"]!.GetValue<string>());
        Assert.True(delivery.Body["spent_usd"]!.GetValue<decimal>() >= 0.013m * 0.8m);
        Assert.StartsWith("v1=", delivery.Signature);

        var bad = await Admin.PostAsJsonAsync("/admin/keys", new { name = "bad-alert", tier = "free", alert_webhook_url = "ftp://example.com" });
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.NotNull((await bad.JsonAsync())["errors"]!["alert_webhook_url"]);
    }

    [Fact]
    public async Task Near_its_budget_a_key_gets_the_cheaper_model_of_the_chain_first_and_the_answer_says_so()
    {
        var name = TestNames.Unique("degrading");
        var (dear, cheap) = (TestNames.Unique("dear-model"), TestNames.Unique("cheap-model"));
        var put = await Admin.PutAsJsonAsync($"/admin/agents/{name}", new
        {
            description = "An agent with a dear and a cheap model.",
            system_prompt = "You are brief.",
            keywords = new[] { "zzdegrade" },
            models = new object[]
            {
                new { provider = "default", model = dear, input_per_1k = InputPer1K, output_per_1k = OutputPer1K, cost_tier = 3 },
                new { provider = "default", model = cheap, input_per_1k = 0.0001m, output_per_1k = 0.0002m, cost_tier = 1 },
            },
            max_output_tokens = 100,
        });
        Assert.True(put.IsSuccessStatusCode, await put.Content.ReadAsStringAsync());
        platform.Llm.ScriptModel(dear, new LlmStep(Content: "dear answer", PromptTokens: 10, CompletionTokens: 100));
        platform.Llm.ScriptModel(cheap, new LlmStep(Content: "cheap answer", PromptTokens: 10, CompletionTokens: 100));
        var (key, _) = await KeyAsync(new { name = "degraded", tier = "enterprise", daily_budget_usd = 0.01m });
        var client = platform.Client(key);

        var answers = new List<JsonObject>();
        for (var i = 0; i < 5; i++) answers.Add(await (await client.ExecuteAsync(new { task = $"degrade {i}", agent_type = name })).JsonAsync());

        // $0.0031 a run on the dear model: 0 %, 31 %, 62 %, then past 80 % (and past what a dear run could still fit): cheap.
        Assert.Equal([dear, dear, dear, cheap, cheap], answers.Select(a => a["model"]!.GetValue<string>()).ToArray());
        Assert.Equal([false, false, false, true, true], answers.Select(a => a["degraded"]!.GetValue<bool>()).ToArray());
        Assert.True(answers[3]["runs"]![0]!["degraded"]!.GetValue<bool>());
    }

    [Fact]
    public async Task A_keys_own_rpm_limit_overrides_its_tier()
    {
        var (key, _) = await KeyAsync(new { name = "rpm", tier = "enterprise", rpm_limit = 2 });
        var client = platform.Client(key);
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 3; i++) statuses.Add((await client.GetAsync("/agent/conversations")).StatusCode);
        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests], statuses);
    }
}
