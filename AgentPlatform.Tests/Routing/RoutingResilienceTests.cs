using System.Net;
using System.Text.Json.Nodes;
using AgentPlatform.Tests.Infrastructure;

namespace AgentPlatform.Tests.Routing;

/// <summary>Routing never fails a request: not on the provider's embeddings, not on a text that embeds to nothing.</summary>
[Collection(PlatformCollection.Name)]
public sealed class RoutingResilienceTests(PlatformFixture platform)
{
    [Fact]
    public async Task A_one_letter_task_is_routed_and_answered_with_finite_scores()
    {
        var client = platform.Client(await platform.CreateKeyAsync());

        using var sync = await client.ExecuteAsync(new { task = "x" });
        using var accepted = await client.ExecuteAsync(new { task = "x", async_execution = true });
        var final = await client.WaitForFinalAsync((await accepted.JsonAsync())["task_id"]!.GetValue<string>());

        Assert.Equal(HttpStatusCode.OK, sync.StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
        Assert.Equal("completed", final["status"]!.GetValue<string>());
        foreach (var candidate in final["routing"]!["candidates"]!.AsArray())
        {
            Assert.True(double.IsFinite(candidate!["score"]!.GetValue<double>()));
            Assert.True(double.IsFinite(candidate["similarity"]!.GetValue<double>()));
        }
    }

    [Fact]
    public async Task Failing_provider_embeddings_fall_back_to_the_local_embedding_and_the_breaker_stops_asking()
    {
        // An Api of its own: the breaker counts failures against the calls of its last 30 s, and other tests' successful
        // routing calls on the shared Api would dilute the failure ratio it opens at.
        var client = PlatformFixture.ClientFor(platform.StartExtraApi(), await platform.CreateKeyAsync());
        platform.Llm.EmbeddingFailureStatus = 500;
        try
        {
            List<JsonObject> answers = [];
            var callsBefore = platform.Llm.EmbeddingCalls;
            for (var i = 0; i < 10; i++)
            {
                using var response = await client.ExecuteAsync(new { task = $"Write a short poem about the sea, take {i}" });
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                answers.Add(await response.JsonAsync());
            }

            Assert.All(answers, a => Assert.Equal("local", a["routing"]!["embeddings"]!.GetValue<string>()));
            Assert.Equal("writer", answers[^1]["agent"]!.GetValue<string>());
            Assert.True(platform.Llm.EmbeddingCalls > callsBefore, "the provider was tried first");
            // Without a breaker each request would make 3 calls (1 + Llm:MaxRetries), 30 in all. The breaker opens after 4
            // failed requests and, while open, lets at most a probe through every 3 s (Router:EmbeddingBreakDuration here).
            var calls = platform.Llm.EmbeddingCalls - callsBefore;
            Assert.True(calls <= 18, $"{calls} embedding calls for 10 requests: the breaker did not stop them");
        }
        finally
        {
            platform.Llm.EmbeddingFailureStatus = null;
            await Task.Delay(TimeSpan.FromSeconds(3.5)); // Router:EmbeddingBreakDuration in the tests: later tests find it closing
        }
    }

    [Fact]
    public async Task Routing_says_which_embeddings_decided()
    {
        var client = platform.Client(await platform.CreateKeyAsync());

        using var response = await client.ExecuteAsync(new { task = "Refactor this C# method to use async streams" });

        Assert.Equal(PlatformFixture.EmbeddingModel, (await response.JsonAsync())["routing"]!["embeddings"]!.GetValue<string>());
    }
}
