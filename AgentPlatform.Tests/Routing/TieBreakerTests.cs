using System.Net.Http.Json;
using AgentPlatform.Engine.Billing;
using AgentPlatform.Engine.Llm;
using AgentPlatform.Engine.Routing;
using AgentPlatform.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace AgentPlatform.Tests.Routing;

/// <summary>
/// The LLM tie-breaker's plumbing against the LLM double (its accuracy needs a real model): called only for a near tie and
/// only with a provider, metered and cached, and anything but a clear answer leaves the decision to the scores.
/// </summary>
[Collection(PlatformCollection.Name)]
public sealed class TieBreakerTests(PlatformFixture platform)
{
    private IServiceProvider Services => platform.Api.Services;
    private RoutingTieBreaker TieBreaker => Services.GetRequiredService<RoutingTieBreaker>();

    private AgentRouter Router(double margin, RoutingTieBreaker? tieBreaker = null) =>
        RouterEvaluation.Router(Services, RouterEmbedding.Hashed, o => o.TieBreakMargin = margin, tieBreaker ?? TieBreaker);

    private static Task<RoutingDecision> RouteAsync(AgentRouter router, string prompt) =>
        router.RouteAsync(prompt, null, null, null, RouterEvaluation.DefaultAgents.Contains, CancellationToken.None);

    private int CallsFor(string marker) => platform.Llm.CallsFor(marker).Count(c => !c.Completed);

    [Fact]
    public async Task A_near_tie_is_settled_by_one_metered_classification_call_whose_answer_is_cached()
    {
        var marker = TestNames.Unique("tie");
        var prompt = $"Write a short story about a probability puzzle {marker}";
        var scores = await RouteAsync(Router(margin: 0), prompt);
        var runnerUp = scores.Candidates[1].Agent;
        platform.Llm.Script(marker, new LlmStep(Content: $$"""{"agent": "{{runnerUp}}"}""", PromptTokens: 120, CompletionTokens: 8));
        var router = Router(margin: 1.0);
        var keyId = Guid.NewGuid();

        RoutingDecision decided, again;
        using (UsageScope.Begin(keyId))
        {
            decided = await RouteAsync(router, prompt);
            again = await RouteAsync(router, prompt);
        }

        Assert.Equal(runnerUp, decided.Agent);
        Assert.Equal(Strategies.Single, decided.Strategy);
        Assert.Equal(RoutingTieBreaker.Decided, decided.TieBreak!.Outcome);
        Assert.False(decided.TieBreak.Cached);
        Assert.Equal((120, 8), (decided.TieBreak.InputTokens, decided.TieBreak.OutputTokens));
        Assert.True(decided.TieBreak.CostUsd > 0);
        Assert.Equal(scores.Candidates.Select(c => c.Agent), decided.Candidates.Select(c => c.Agent));
        // The same prompt again: the cached answer, no second call, no cost.
        Assert.Equal(runnerUp, again.Agent);
        Assert.True(again.TieBreak!.Cached);
        Assert.Equal(0m, again.TieBreak.CostUsd);
        Assert.Equal(1, CallsFor(marker));
        // The call reached the model with the two agents and the task, and asked for JSON.
        var call = platform.Llm.CallsFor(marker).First();
        Assert.Contains(scores.Candidates[0].Agent, call.UserMessage);
        Assert.Contains(runnerUp, call.UserMessage);
        Assert.Equal("json_object", call.Body!["response_format"]?["type"]?.GetValue<string>());
        // Metered like every call: one ledger entry of kind routing for the caller's key, at the call's price.
        await HttpExtensions.WaitUntilAsync(async () =>
        {
            await using var db = new Npgsql.NpgsqlConnection(platform.DatabaseConnectionString);
            await db.OpenAsync();
            await using var query = new Npgsql.NpgsqlCommand(
                """SELECT count(*) FROM usage_ledger WHERE "ApiKeyId" = @key AND "Kind" = 'routing' AND "CostUsd" = @cost AND "InputTokens" = 120""", db);
            query.Parameters.AddWithValue("key", keyId);
            query.Parameters.AddWithValue("cost", decided.TieBreak.CostUsd);
            return (long)(await query.ExecuteScalarAsync())! == 1;
        }, seconds: 10, what: "the tie-breaker's ledger entry");
    }

    [Fact]
    public async Task A_clear_lead_makes_no_call()
    {
        var marker = TestNames.Unique("lead");
        var prompt = $"Write a Python function that parses a CSV file {marker}";
        var scores = await RouteAsync(Router(margin: 0), prompt);
        var lead = scores.Candidates[0].Score - scores.Candidates[1].Score;

        var decision = await RouteAsync(Router(margin: lead * 0.9), prompt);

        Assert.True(lead > 0.01, $"lead {lead}");
        Assert.Null(decision.TieBreak);
        Assert.Equal(scores.Agent, decision.Agent);
        Assert.Equal(0, CallsFor(marker));
    }

    [Fact]
    public async Task Without_a_provider_the_offline_model_is_never_asked()
    {
        var marker = TestNames.Unique("offline");
        var offline = Options.Create(new LlmOptions());
        var pool = new ChatClientPool(offline, Services.GetRequiredService<IHttpClientFactory>(), NullLoggerFactory.Instance);
        var tieBreaker = new RoutingTieBreaker(pool, Services.GetRequiredService<CircuitBreakers>(), offline,
            Services.GetRequiredService<UsageLedger>(), Services.GetRequiredService<StackExchange.Redis.IConnectionMultiplexer>(),
            Services.GetRequiredService<IOptionsMonitor<RouterOptions>>(), NullLogger<RoutingTieBreaker>.Instance);

        var decision = await RouteAsync(Router(margin: 1.0, tieBreaker), $"Write a short story about a probability puzzle {marker}");

        Assert.False(tieBreaker.IsAvailable);
        Assert.Null(decision.TieBreak);
        Assert.Equal(0, CallsFor(marker));
    }

    [Theory]
    [InlineData("The writer agent, I think.", RoutingTieBreaker.Unusable)]
    [InlineData("""{"agent": "nobody-of-the-two"}""", RoutingTieBreaker.Unusable)]
    [InlineData("""{"choice": 1}""", RoutingTieBreaker.Unusable)]
    [InlineData(null, RoutingTieBreaker.Failed)]
    public async Task An_unusable_answer_or_a_failed_call_leaves_the_choice_to_the_scores(string? answer, string outcome)
    {
        var marker = TestNames.Unique("bad");
        var prompt = $"Write a short story about a probability puzzle {marker}";
        var scores = await RouteAsync(Router(margin: 0), prompt);
        platform.Llm.Script(marker, answer is null ? new LlmStep(Status: 500) : new LlmStep(Content: answer));

        var decision = await RouteAsync(Router(margin: 1.0), prompt);

        Assert.Equal(outcome, decision.TieBreak!.Outcome);
        Assert.Null(decision.TieBreak.Agent);
        Assert.Equal(scores.Agent, decision.Agent);
        Assert.True(CallsFor(marker) >= 1);
    }

    [Fact]
    public async Task The_response_shows_the_tie_breakers_outcome_and_cost_in_routing()
    {
        var api = platform.StartExtraApi(overrides: new Dictionary<string, string>
        {
            ["Router__Embedding"] = "hashed",
            ["Router__TieBreakMargin"] = "1",
        });
        // A key that may use two agents: they are the two best, whatever the Api's track records say.
        var client = PlatformFixture.ClientFor(api, await platform.CreateKeyAsync(allowedAgents: ["writer", "math"]));
        var marker = TestNames.Unique("shown");
        var prompt = $"Write a rhyming poem that solves the equation 3x + 5 = 20 {marker}";
        platform.Llm.Script(marker, new LlmStep(Content: """{"agent": "math"}"""), new LlmStep(Content: "The answer."));

        using var response = await client.ExecuteAsync(new { task = prompt });
        var body = await response.JsonAsync();

        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        var topTwo = body["routing"]!["candidates"]!.AsArray().Take(2).Select(c => c!["agent"]!.GetValue<string>()).ToList();
        Assert.True(topTwo.Contains("math") && topTwo.Contains("writer"), body.ToJsonString());
        Assert.Equal("math", body["agent"]!.GetValue<string>());
        var tieBreak = body["routing"]!["tie_break"]!;
        Assert.Equal(RoutingTieBreaker.Decided, tieBreak["outcome"]!.GetValue<string>());
        Assert.Equal("math", tieBreak["agent"]!.GetValue<string>());
        Assert.True(tieBreak["cost_usd"]!.GetValue<decimal>() > 0);
        Assert.Equal(RoutingEmbeddings.LocalSpace, body["routing"]!["embeddings"]!.GetValue<string>());
        Assert.Equal("The answer.", body["result"]!.GetValue<string>());
    }
}
