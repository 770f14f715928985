using System.Net;
using System.Net.Http.Json;
using System.Text;
using AgentPlatform.Engine.Data;
using AgentPlatform.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace AgentPlatform.Tests.Tasks;

[Collection(PlatformCollection.Name)]
public sealed class FeedbackTests(PlatformFixture platform)
{
    private const string CodePrompt = "Write a Python function that parses a CSV file";

    [Fact]
    public async Task Twenty_concurrent_ratings_of_one_task_all_succeed_and_leave_one_rating()
    {
        var client = platform.Client(await platform.CreateKeyAsync());
        var taskId = Guid.Parse((await (await client.ExecuteAsync(new { task = "rate me at once" })).JsonAsync())["task_id"]!.GetValue<string>());

        var responses = await Task.WhenAll(Enumerable.Range(0, 20).Select(i =>
            client.PostAsJsonAsync("/agent/feedback", new { task_id = taskId, rating = 1 + i % 5, comment = $"take {i}" })));

        Assert.All(responses, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        using var scope = platform.Api.Services.CreateScope();
        var stored = await scope.ServiceProvider.GetRequiredService<AgentDbContext>().Feedback.Where(f => f.TaskId == taskId).ToListAsync();
        Assert.Single(stored);
        Assert.InRange(stored[0].Rating, 1, 5);
    }

    [Fact]
    public async Task Fifty_bad_ratings_from_one_key_do_not_move_another_keys_routing()
    {
        var rater = platform.Client(await platform.CreateKeyAsync());
        var bystander = platform.Client(await platform.CreateKeyAsync());
        Assert.Equal("code", (await (await bystander.ExecuteAsync(new { task = CodePrompt })).JsonAsync())["agent"]!.GetValue<string>());

        for (var i = 0; i < 50; i++)
        {
            var taskId = (await (await rater.ExecuteAsync(new { task = $"bad answer {i}", agent_type = "code" })).JsonAsync())["task_id"]!.GetValue<string>();
            (await rater.PostAsJsonAsync("/agent/feedback", new { task_id = taskId, rating = 1, comment = "useless" })).EnsureSuccessStatusCode();
        }

        var theirs = await (await bystander.ExecuteAsync(new { task = CodePrompt })).JsonAsync();
        var mine = await (await rater.ExecuteAsync(new { task = CodePrompt })).JsonAsync();
        static double CodeRecord(System.Text.Json.Nodes.JsonObject answer) =>
            answer["routing"]!["candidates"]!.AsArray().Single(c => c!["agent"]!.GetValue<string>() == "code")!["success_rate"]!.GetValue<double>();

        Assert.Equal("code", theirs["agent"]!.GetValue<string>());
        Assert.True(CodeRecord(theirs) > 0.8, $"the bystander's record of code: {CodeRecord(theirs)}");
        // The rater's own routing does learn from its ratings.
        Assert.True(CodeRecord(mine) < CodeRecord(theirs) - 0.3, $"rater {CodeRecord(mine)}, bystander {CodeRecord(theirs)}");
    }

    [Fact]
    public async Task An_idempotent_replay_answers_with_the_tasks_current_status()
    {
        var client = platform.Client(await platform.CreateKeyAsync());
        var key = "replay-" + Guid.NewGuid().ToString("N");
        var first = await (await client.ExecuteAsync(new { task = "replay me", async_execution = true }, idempotencyKey: key)).JsonAsync();
        var taskId = first["task_id"]!.GetValue<string>();
        Assert.Equal("completed", (await client.WaitForFinalAsync(taskId))["status"]!.GetValue<string>());

        var replay = await client.ExecuteAsync(new { task = "replay me", async_execution = true }, idempotencyKey: key);

        Assert.Equal(HttpStatusCode.Accepted, replay.StatusCode);
        var body = await replay.JsonAsync();
        Assert.Equal(taskId, body["task_id"]!.GetValue<string>());
        Assert.Equal("completed", body["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task The_same_body_in_another_key_order_and_whitespace_is_the_same_idempotent_request()
    {
        var client = platform.Client(await platform.CreateKeyAsync());
        var key = "canonical-" + Guid.NewGuid().ToString("N");
        Task<HttpResponseMessage> Send(string json)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "/agent/execute") { Content = new StringContent(json, Encoding.UTF8, "application/json") };
            request.Headers.Add("Idempotency-Key", key);
            return client.SendAsync(request);
        }

        var first = await Send("""{"task":"same request","async_execution":true,"context":{"user":"ann","prefs":{"lang":"en","tz":"UTC"},"tags":[1,2]}}""");
        var second = await Send("""
            {
              "context": { "tags": [1, 2], "prefs": { "tz": "UTC", "lang": "en" }, "user": "ann" },
              "async_execution": true,
              "task": "same request"
            }
            """);
        var different = await Send("""{"task":"same request","async_execution":true,"context":{"user":"bob","prefs":{"lang":"en","tz":"UTC"},"tags":[1,2]}}""");

        Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, second.StatusCode);
        Assert.Equal((await first.JsonAsync())["task_id"]!.GetValue<string>(), (await second.JsonAsync())["task_id"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.Conflict, different.StatusCode);
    }
}
