using AgentPlatform.Engine.Caching;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using AgentPlatform.Engine.Billing;
using AgentPlatform.Engine.Data;
using AgentPlatform.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using static AgentPlatform.Tests.Infrastructure.TestNames;

namespace AgentPlatform.Tests.Billing;

/// <summary>GET /usage and GET /admin/usage over entries in the real ledger, on days of their own.</summary>
[Collection(PlatformCollection.Name)]
public sealed class UsageApiTests(PlatformFixture platform)
{
    private HttpClient Admin => platform.Client(PlatformFixture.AdminKey);
    private UsageLedger Ledger => platform.Api.Services.GetRequiredService<UsageLedger>();

    private async Task<(Guid Id, string Name, HttpClient Client)> NewKeyAsync()
    {
        var name = Unique("usage");
        var created = await (await Admin.PostAsJsonAsync("/admin/keys", new { name, tier = "pro" })).JsonAsync();
        return (Guid.Parse(created["id"]!.GetValue<string>()), name, platform.Client(created["key"]!.GetValue<string>()));
    }

    private UsageEntry Record(Guid key, DateTimeOffset at, string? agent, string model, string kind, long input, long output, decimal cost,
        string? cache = null)
    {
        var entry = new UsageEntry
        {
            Id = Guid.CreateVersion7(), ApiKeyId = key, Agent = agent, Model = model, Kind = kind, InputTokens = input, OutputTokens = output,
            CostUsd = cost, CacheOutcome = cache, CreatedAt = at,
        };
        Ledger.Record(entry);
        return entry;
    }

    private static Dictionary<string, (long Calls, long Input, long Output, decimal Cost)> Groups(JsonObject usage) =>
        usage["groups"]!.AsArray().ToDictionary(g => g!["group"]?.GetValue<string>() ?? "(none)",
            g => (g!["calls"]!.GetValue<long>(), g["input_tokens"]!.GetValue<long>(), g["output_tokens"]!.GetValue<long>(), g["cost_usd"]!.GetValue<decimal>()));

    private static async Task<JsonObject> OkAsync(HttpClient client, string url)
    {
        var response = await client.GetAsync(url);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{url}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        return await response.JsonAsync();
    }

    [Fact]
    public async Task Usage_is_grouped_by_day_agent_model_and_kind_and_never_shows_another_keys_usage()
    {
        var (mine, _, client) = await NewKeyAsync();
        var (other, _, stranger) = await NewKeyAsync();
        var today = UsageLedger.StartOfDay(DateTimeOffset.UtcNow);
        var (day1, day2) = (today.AddDays(-3), today.AddDays(-2));
        var entries = new List<UsageEntry>
        {
            Record(mine, today.AddDays(-4).AddHours(23), "alpha", "m-1", UsageKinds.Chat, 1000, 1000, 1m), // the day before the range
            Record(mine, day1.AddHours(10), "alpha", "m-1", UsageKinds.Chat, 100, 10, 0.0011m),
            Record(mine, day1.AddHours(11), "beta", "m-2", UsageKinds.Chat, 200, 20, 0.0022m),
            Record(mine, day1.AddHours(12), null, "emb", UsageKinds.Embedding, 50, 0, 0.000001m),
            Record(mine, day2.AddHours(5), "alpha", "m-1", UsageKinds.Summary, 300, 30, 0.0033m),
            Record(mine, day2.AddHours(6), "alpha", "m-2", UsageKinds.Chat, 70, 7, 0m, CacheOutcomes.Exact),
            Record(other, day1.AddHours(10), "alpha", "m-1", UsageKinds.Chat, 999, 99, 0.5m),
            Record(other, day2.AddHours(10), "gamma", "m-3", UsageKinds.Chat, 888, 88, 0.25m),
        };
        var range = $"from={day1:yyyy-MM-dd}&to={day2:yyyy-MM-dd}";

        async Task CheckAsync()
        {
            var byDay = await OkAsync(client, $"/usage?{range}&group_by=day");
            Assert.Equal(day1, byDay["from"]!.GetValue<DateTimeOffset>());
            Assert.Equal(day2.AddDays(1), byDay["to"]!.GetValue<DateTimeOffset>()); // a date means up to the end of that day
            Assert.Equal("day", byDay["group_by"]!.GetValue<string>());
            Assert.Equal(new[] { $"{day1:yyyy-MM-dd}", $"{day2:yyyy-MM-dd}" }, byDay["groups"]!.AsArray().Select(g => g!["group"]!.GetValue<string>()));
            Assert.Equal((3L, 350L, 30L, 0.003301m), Groups(byDay)[$"{day1:yyyy-MM-dd}"]);
            Assert.Equal((2L, 370L, 37L, 0.0033m), Groups(byDay)[$"{day2:yyyy-MM-dd}"]);
            Assert.Equal(5, byDay["totals"]!["calls"]!.GetValue<long>());
            Assert.Equal(0.006601m, byDay["totals"]!["cost_usd"]!.GetValue<decimal>());
            Assert.Equal(787, byDay["totals"]!["total_tokens"]!.GetValue<long>());

            var byAgent = await OkAsync(client, $"/usage?{range}&group_by=agent");
            Assert.Equal("alpha", byAgent["groups"]![0]!["group"]!.GetValue<string>()); // the most expensive first
            Assert.Equal((3L, 470L, 47L, 0.0044m), Groups(byAgent)["alpha"]);
            Assert.Equal((1L, 200L, 20L, 0.0022m), Groups(byAgent)["beta"]);
            Assert.Equal((1L, 50L, 0L, 0.000001m), Groups(byAgent)["(none)"]);
            Assert.False(Groups(byAgent).ContainsKey("gamma"));

            var byModel = await OkAsync(client, $"/usage?{range}&group_by=model");
            Assert.Equal((2L, 400L, 40L, 0.0044m), Groups(byModel)["m-1"]);
            Assert.Equal((2L, 270L, 27L, 0.0022m), Groups(byModel)["m-2"]);
            Assert.Equal(3, Groups(byModel).Count);

            var byKind = await OkAsync(client, $"/usage?{range}&group_by=kind");
            Assert.Equal((3L, 370L, 37L, 0.0033m), Groups(byKind)["chat"]);
            Assert.Equal((1L, 300L, 30L, 0.0033m), Groups(byKind)["summary"]);
            Assert.Equal((1L, 50L, 0L, 0.000001m), Groups(byKind)["embedding"]);

            // A time of day narrows the range: from noon on the first day, only its embedding is left of that day.
            var fromNoon = await OkAsync(client, $"/usage?from={day1.AddHours(12):yyyy-MM-ddTHH:mm:ssZ}&to={day2:yyyy-MM-dd}&group_by=day");
            Assert.Equal((1L, 50L, 0L, 0.000001m), Groups(fromNoon)[$"{day1:yyyy-MM-dd}"]);

            // The other key sees only its own.
            var theirs = await OkAsync(stranger, $"/usage?{range}&group_by=agent");
            Assert.Equal(0.75m, theirs["totals"]!["cost_usd"]!.GetValue<decimal>());
            Assert.Equal(new[] { "alpha", "gamma" }, Groups(theirs).Keys.Order());
        }

        // Read while the entries are still in this instance's memory, then once Postgres has them: the same answers.
        Assert.True(Ledger.UnwrittenWhere(e => e.ApiKeyId == mine).Count > 0);
        await CheckAsync();
        var ids = entries.Select(e => e.Id).ToList();
        await HttpExtensions.WaitUntilAsync(async () =>
        {
            await using var scope = platform.Api.Services.CreateAsyncScope();
            return await scope.ServiceProvider.GetRequiredService<AgentDbContext>().UsageLedger.CountAsync(e => ids.Contains(e.Id)) == ids.Count;
        }, seconds: 10, what: "the entries in Postgres");
        Assert.Empty(Ledger.UnwrittenWhere(e => e.ApiKeyId == mine));
        await CheckAsync();

        // Today's fields keep working beside the ledger's: no tasks today, the tier's budget and limit.
        var now = await OkAsync(client, "/usage");
        Assert.Equal(0, now["requests"]!.GetValue<int>());
        Assert.Equal(10m, now["daily_budget_usd"]!.GetValue<decimal>());
        Assert.Equal(100, now["requests_per_minute"]!.GetValue<int>());
        Assert.Equal(today, now["from"]!.GetValue<DateTimeOffset>());
        Assert.Equal(0, now["totals"]!["calls"]!.GetValue<long>());
    }

    [Theory]
    [InlineData("from=2026-13-01", "from")]
    [InlineData("from=last%20tuesday", "from")]
    [InlineData("to=11%2F25%2F2026", "to")]
    [InlineData("from=2026-11-20&to=2026-11-10", "to")]
    [InlineData("from=2024-01-01&to=2025-06-01", "to")]
    [InlineData("group_by=week", "group_by")]
    [InlineData("group_by=key", "group_by")]
    public async Task Bad_usage_queries_are_400_naming_the_field(string query, string field)
    {
        var (_, _, client) = await NewKeyAsync();

        var response = await client.GetAsync("/usage?" + query);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType!.MediaType);
        var errors = (await response.JsonAsync())["errors"]!.AsObject();
        Assert.Equal(field, Assert.Single(errors).Key);
    }

    [Fact]
    public async Task A_time_with_an_offset_is_read_as_that_instant()
    {
        var (_, _, client) = await NewKeyAsync();

        var usage = await OkAsync(client, "/usage?from=2026-11-20T10:00:00%2B02:00&to=2026-11-21T00:00:00Z");

        Assert.Equal(new DateTimeOffset(2026, 11, 20, 8, 0, 0, TimeSpan.Zero), usage["from"]!.GetValue<DateTimeOffset>());
        Assert.Equal(new DateTimeOffset(2026, 11, 21, 0, 0, 0, TimeSpan.Zero), usage["to"]!.GetValue<DateTimeOffset>());
    }

    [Fact]
    public async Task Admin_usage_covers_every_key_grouped_by_key_and_is_for_the_admin_only()
    {
        var (first, firstName, client) = await NewKeyAsync();
        var (second, secondName, _) = await NewKeyAsync();
        var day = UsageLedger.StartOfDay(DateTimeOffset.UtcNow).AddDays(-10);
        Record(first, day.AddHours(1), "alpha", "m-1", UsageKinds.Chat, 10, 1, 0.01m);
        Record(first, day.AddHours(2), "alpha", "m-1", UsageKinds.Chat, 10, 1, 0.02m);
        Record(second, day.AddHours(3), "beta", "m-2", UsageKinds.Chat, 20, 2, 0.04m);
        var range = $"from={day:yyyy-MM-dd}&to={day:yyyy-MM-dd}";

        var all = await OkAsync(Admin, $"/admin/usage?{range}");
        var one = await OkAsync(Admin, $"/admin/usage?{range}&api_key_id={first}&group_by=agent");
        var badKey = await Admin.GetAsync($"/admin/usage?{range}&api_key_id=not-a-key");
        var asClient = await client.GetAsync($"/admin/usage?{range}");
        var anonymous = await platform.Client().GetAsync($"/admin/usage?{range}");

        Assert.Equal("key", all["group_by"]!.GetValue<string>());
        var groups = all["groups"]!.AsArray().Select(g => g!.AsObject()).ToList();
        var firstGroup = groups.Single(g => g["group"]!.GetValue<string>() == first.ToString());
        Assert.Equal(firstName, firstGroup["name"]!.GetValue<string>());
        Assert.Equal(0.03m, firstGroup["cost_usd"]!.GetValue<decimal>());
        Assert.Equal(2, firstGroup["calls"]!.GetValue<long>());
        Assert.Equal(secondName, groups.Single(g => g["group"]!.GetValue<string>() == second.ToString())["name"]!.GetValue<string>());
        Assert.True(groups.IndexOf(groups.Single(g => g["group"]!.GetValue<string>() == second.ToString())) < groups.IndexOf(firstGroup));

        Assert.Equal(first.ToString(), one["api_key_id"]!.GetValue<string>());
        Assert.Equal(0.03m, one["totals"]!["cost_usd"]!.GetValue<decimal>());
        Assert.Equal("alpha", Assert.Single(one["groups"]!.AsArray())!["group"]!.GetValue<string>());

        Assert.Equal(HttpStatusCode.BadRequest, badKey.StatusCode);
        Assert.NotNull((await badKey.JsonAsync())["errors"]!["api_key_id"]);
        Assert.Equal(HttpStatusCode.Forbidden, asClient.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
    }
}
