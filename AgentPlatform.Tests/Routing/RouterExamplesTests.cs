using System.Net;
using System.Net.Http.Json;
using AgentPlatform.Engine.Routing;
using AgentPlatform.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace AgentPlatform.Tests.Routing;

/// <summary>Agents are recognised by their example tasks, in every embedding mode, and the default mode meets its accuracy target.</summary>
[Collection(PlatformCollection.Name)]
public sealed class RouterExamplesTests(PlatformFixture platform, ITestOutputHelper output)
{
    private IServiceProvider Services => platform.Api.Services;

    [Fact]
    public async Task Held_out_everyday_prompts_mostly_reach_the_right_agent_in_the_default_mode_without_a_provider()
    {
        var set = await RouterEvaluation.LoadAsync();
        var mode = new RouterOptions().Embedding;

        var results = await RouterEvaluation.EvaluateAsync(RouterEvaluation.Router(Services, mode), set);

        foreach (var (split, result) in results)
        {
            output.WriteLine($"{mode} {split}: {result.Accuracy:P1} ({result.Correct}/{result.Total}); strategies {string.Join(", ", result.Strategies.Select(s => $"{s.Key} {s.Value}"))}");
            foreach (var miss in result.Misses) output.WriteLine("  " + miss);
        }
        Assert.True(set.Count >= 200 && set.GroupBy(s => s.Agent).All(g => g.Count() >= 40), "the set has at least 200 prompts, 40 per agent");
        // Issue 12's target. Measured: 91.5 % held out with 26 examples per agent (ten written for the agents plus the set's
        // 16 tuning prompts each; ten alone gave 86.9 %). The tuning prompts are examples now, so tuning accuracy is 100 %
        // by construction: the held-out part, which nothing was chosen on, is the figure.
        Assert.True(results["heldout"].Accuracy >= 0.90, $"held-out accuracy {results["heldout"].Accuracy:P1}");
        // The default earns its memory: the hashed mode, with the same examples, does worse.
        var hashed = await RouterEvaluation.EvaluateAsync(RouterEvaluation.Router(Services, RouterEmbedding.Hashed), set);
        output.WriteLine($"Hashed heldout: {hashed["heldout"].Accuracy:P1}");
        Assert.True(results["heldout"].Accuracy > hashed["heldout"].Accuracy + 0.1);
    }

    [Fact]
    public async Task A_new_agent_is_routable_by_its_examples_at_once_in_every_mode()
    {
        var name = TestNames.Unique("garden");
        var admin = platform.Client(PlatformFixture.AdminKey);
        // Neither the description nor keywords name the prompts' words: only the examples do.
        (await admin.PutAsJsonAsync($"/admin/agents/{name}", new
        {
            description = "Helps with the outdoors at home.",
            system_prompt = "You are a gardener.",
            examples = new[]
            {
                "When should I plant tulip bulbs?", "How do I get rid of aphids on my roses?", "Which vegetables grow well in shade?",
                "How often should I mow the lawn in summer?", "Why are the leaves of my tomato plants turning yellow?", "How do I start a compost heap?",
            },
        })).EnsureSuccessStatusCode();
        string[] prompts = ["Aphids are all over my rose bushes, what can I do?", "When is the right time to put tulip bulbs in the ground?"];

        foreach (var mode in new[] { RouterEmbedding.Hashed, RouterEmbedding.MiniLM })
        {
            var router = RouterEvaluation.Router(Services, mode);
            foreach (var prompt in prompts)
            {
                var decision = await router.RouteAsync(prompt, null, null, null, _ => true, CancellationToken.None);
                Assert.True(name == decision.Agent, $"{mode}: '{prompt}' went to {decision.Agent}");
            }
        }
        // Through the Api (provider mode on the LLM double here), with no restart and no wait.
        var client = platform.Client(await platform.CreateKeyAsync());
        var routed = await (await client.ExecuteAsync(new { task = prompts[0], strategy = "single" })).JsonAsync();
        Assert.Equal(name, routed["routing"]!["agent"]!.GetValue<string>());
    }

    [Fact]
    public async Task The_embedding_mode_is_chosen_by_setting_and_named_in_the_decision()
    {
        const string prompt = "What is 17% of 2,340?";

        var hashed = await RouterEvaluation.Router(Services, RouterEmbedding.Hashed).RouteAsync(prompt, null, null, null, _ => true, CancellationToken.None);
        var miniLm = await RouterEvaluation.Router(Services, RouterEmbedding.MiniLM).RouteAsync(prompt, null, null, null, _ => true, CancellationToken.None);
        // Provider mode without a provider (LocalOnly embeddings): its fallback answers.
        var fallback = await RouterEvaluation.Router(Services, RouterEmbedding.Provider, o => o.FallbackEmbedding = RouterEmbedding.MiniLM)
            .RouteAsync(prompt, null, null, null, _ => true, CancellationToken.None);

        Assert.Equal(RoutingEmbeddings.LocalSpace, hashed.Embeddings);
        Assert.Equal(MiniLmEmbeddingGenerator.ModelName, miniLm.Embeddings);
        Assert.Equal(MiniLmEmbeddingGenerator.ModelName, fallback.Embeddings);
        Assert.NotEqual(hashed.Candidates.Select(c => c.Similarity), miniLm.Candidates.Select(c => c.Similarity));
        Assert.Equal("math", miniLm.Agent);
        // The shared Api is set to the provider's embeddings (PlatformFixture), and its decisions say so.
        var client = platform.Client(await platform.CreateKeyAsync());
        var response = await (await client.ExecuteAsync(new { task = prompt })).JsonAsync();
        Assert.Equal(PlatformFixture.EmbeddingModel, response["routing"]!["embeddings"]!.GetValue<string>());
    }

    [Fact]
    public async Task The_miniLm_model_is_one_shared_instance_that_encodes_concurrent_batches_consistently()
    {
        var model = Services.GetRequiredService<MiniLmEmbeddingGenerator>();
        string[] texts = ["Convert 72 °F to Celsius", "Write a haiku about the first snow", "Compare EV adoption in Norway and Germany"];
        var alone = model.Embed(texts);

        var concurrent = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() => model.Embed(texts))));

        Assert.Same(model, Services.GetRequiredService<MiniLmEmbeddingGenerator>());
        Assert.All(alone, v => Assert.Equal(MiniLmEmbeddingGenerator.Dimensions, v.Length));
        foreach (var batch in concurrent)
            for (var i = 0; i < texts.Length; i++)
                Assert.True(System.Numerics.Tensors.TensorPrimitives.CosineSimilarity(alone[i], batch[i]) > 0.9999f);
        // A batch gives what single encodes give (padding does not change a text's vector).
        Assert.True(System.Numerics.Tensors.TensorPrimitives.CosineSimilarity(alone[1], model.Embed([texts[1]])[0]) > 0.999f);
    }
}
