using System.Text.Json;
using System.Text.Json.Nodes;
using AgentPlatform.Engine.Agents;
using AgentPlatform.Engine.Execution;
using AgentPlatform.Engine.Llm;
using AgentPlatform.Engine.Routing;
using AgentPlatform.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Xunit.Abstractions;

namespace AgentPlatform.Tests.Routing;

[Collection(PlatformCollection.Name)]
public sealed class RouterTests(PlatformFixture platform, ITestOutputHelper output)
{
    private sealed record Labelled(string Prompt, string Agent);

    /// <summary>A router over the platform's agents with its own, empty track records (other tests' outcomes don't leak in).</summary>
    private AgentRouter FreshRouter(out AgentStats stats)
    {
        var services = platform.Api.Services;
        var options = new OptionsMonitorStub<RouterOptions>(new RouterOptions
        {
            StatsNamespace = "test-" + Guid.NewGuid().ToString("N")[..8],
            StatsCacheDuration = TimeSpan.Zero,
        });
        stats = new AgentStats(services.GetRequiredService<StackExchange.Redis.IConnectionMultiplexer>(), options, NullLogger<AgentStats>.Instance);
        return new AgentRouter(services.GetRequiredService<AgentRegistry>(), stats, services.GetRequiredService<CircuitBreakers>(),
            RoutingEmbeddings.LocalOnly(services.GetRequiredService<MiniLmEmbeddingGenerator>()), options);
    }

    [Fact]
    public async Task The_router_picks_the_expected_agent_for_a_labelled_set_of_prompts()
    {
        var set = JsonSerializer.Deserialize<List<Labelled>>(await File.ReadAllTextAsync(Path.Combine(AppContext.BaseDirectory, "Routing", "routing-set.json")),
            new JsonSerializerOptions(JsonSerializerDefaults.Web))!;
        var router = FreshRouter(out _);
        var defaults = new[] { "general", "research", "code", "writer", "math" };

        var misses = new List<string>();
        foreach (var item in set)
        {
            var decision = await router.RouteAsync(item.Prompt, null, null, null, defaults.Contains, CancellationToken.None);
            if (decision.Agent != item.Agent) misses.Add($"  expected {item.Agent,-8} got {decision.Agent,-8} ({decision.Confidence:0.000}) {item.Prompt}");
        }

        var accuracy = 1.0 - (double)misses.Count / set.Count;
        output.WriteLine($"Routing accuracy: {accuracy:P1} ({set.Count - misses.Count}/{set.Count} prompts, {set.Select(s => s.Agent).Distinct().Count()} agents, default embedding: {new RouterOptions().Embedding})");
        foreach (var miss in misses) output.WriteLine(miss);
        Assert.True(set.Count >= 30 && set.Select(s => s.Agent).Distinct().Count() >= 4);
        Assert.True(accuracy >= 0.85, $"accuracy {accuracy:P1}\n{string.Join('\n', misses)}");
    }

    [Fact]
    public async Task A_decision_names_the_agent_its_confidence_the_strategy_and_scored_candidates()
    {
        var router = FreshRouter(out _);

        var decision = await router.RouteAsync("Write a Python function that parses a CSV file", null, null, null, _ => true, CancellationToken.None);

        Assert.Equal("code", decision.Agent);
        Assert.Equal(Strategies.Single, decision.Strategy);
        Assert.InRange(decision.Confidence, 0.01, 1);
        Assert.True(decision.Candidates.Count >= 5);
        Assert.Equal(decision.Candidates.OrderByDescending(c => c.Score).Select(c => c.Agent), decision.Candidates.Select(c => c.Agent));
    }

    [Fact]
    public async Task Failures_and_bad_feedback_lower_an_agents_track_record_and_move_traffic_away()
    {
        var router = FreshRouter(out var stats);
        const string prompt = "Write a Python function that parses a CSV file";
        Assert.Equal("code", (await router.RouteAsync(prompt, null, null, null, _ => true, CancellationToken.None)).Agent);

        for (var i = 0; i < 10; i++) stats.RecordOutcome("code", success: false, null);
        var afterFailures = await router.RouteAsync(prompt, null, null, null, _ => true, CancellationToken.None);
        var record = (await stats.ReadAsync())["code"];

        Assert.True(record.SuccessRate < 0.15, $"EMA after 10 failures: {record.SuccessRate}");
        Assert.NotEqual("code", afterFailures.Agent);

        for (var i = 0; i < 15; i++) stats.RecordOutcome("code", success: true, TimeSpan.FromMilliseconds(200));
        Assert.Equal("code", (await router.RouteAsync(prompt, null, null, null, _ => true, CancellationToken.None)).Agent);

        // Feedback is one key's opinion: it lowers code's record in that key's routing only.
        var (rater, bystander) = (Guid.NewGuid(), Guid.NewGuid());
        var global = (await stats.ReadAsync())["code"].SuccessRate;
        for (var i = 0; i < 10; i++) await stats.RecordFeedbackAsync(rater, "code", 1);
        double CodeRecord(RoutingDecision d) => d.Candidates.Single(c => c.Agent == "code").SuccessRate;
        Assert.True(CodeRecord(await router.RouteAsync(prompt, null, null, null, _ => true, CancellationToken.None, rater)) < global - 0.3);
        Assert.Equal(Math.Round(global, 4), CodeRecord(await router.RouteAsync(prompt, null, null, null, _ => true, CancellationToken.None, bystander)));
        Assert.Equal(global, (await stats.ReadAsync())["code"].SuccessRate);
    }

    [Fact]
    public async Task Outcomes_folded_between_writes_give_the_same_track_record_as_writing_each_one()
    {
        FreshRouter(out var stats);
        // (success, latency ms or null) in order; EMA α = 0.2 with no value before the first.
        (bool Ok, double? Ms)[] outcomes = [(true, 100), (false, null), (false, null), (true, 300), (true, 50)];
        var first = outcomes.Take(2).ToArray();
        foreach (var (ok, ms) in first) stats.RecordOutcome("writer", ok, ms is { } m ? TimeSpan.FromMilliseconds(m) : null);
        await stats.FlushAsync(); // two writes: one before, one after the record already holds a value
        foreach (var (ok, ms) in outcomes.Skip(2)) stats.RecordOutcome("writer", ok, ms is { } m ? TimeSpan.FromMilliseconds(m) : null);

        double? success = null, latency = null;
        foreach (var (ok, ms) in outcomes)
        {
            success = success is { } s ? 0.2 * (ok ? 1 : 0) + 0.8 * s : ok ? 1 : 0;
            if (ms is { } m) latency = latency is { } l ? 0.2 * m + 0.8 * l : m;
        }
        var record = (await stats.ReadAsync())["writer"];
        Assert.Equal(success!.Value, record.SuccessRate, 9);
        Assert.Equal(latency!.Value, record.LatencyMs!.Value, 9);
    }

    [Fact]
    public async Task Agents_the_key_may_not_use_are_never_chosen()
    {
        var router = FreshRouter(out _);

        var decision = await router.RouteAsync("Write a Python function that parses a CSV file", null, null, null,
            agent => agent != "code", CancellationToken.None);

        Assert.NotEqual("code", decision.Agent);
        Assert.DoesNotContain(decision.Candidates, c => c.Agent == "code");
    }

    [Fact]
    public async Task The_response_carries_the_routing_decision_and_the_task_record_keeps_it()
    {
        var client = platform.Client(await platform.CreateKeyAsync());

        var response = await (await client.ExecuteAsync(new { task = "Solve the equation 2x + 4 = 10 for x" })).JsonAsync();
        var status = await client.StatusAsync(response["task_id"]!.GetValue<string>());

        Assert.True("math" == response["agent"]!.GetValue<string>(), response.ToJsonString());
        Assert.Equal("math", response["routing"]!["agent"]!.GetValue<string>());
        Assert.NotNull(response["routing"]!["confidence"]);
        Assert.True(response["routing"]!["candidates"]!.AsArray().Count >= 5);
        Assert.True("single" == response["strategy"]!.GetValue<string>(), response.ToJsonString());
        Assert.Equal("math", status["routing"]!["agent"]!.GetValue<string>());
        Assert.Equal("ok", status["runs"]!.AsArray().Single()!["outcome"]!.GetValue<string>());
    }

    private sealed class OptionsMonitorStub<T>(T value) : IOptionsMonitor<T>
    {
        public T CurrentValue => value;
        public T Get(string? name) => value;
        public IDisposable? OnChange(Action<T, string?> listener) => null;
    }
}
