using AgentPlatform.Engine.Caching;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using AgentPlatform.Engine.Billing;
using AgentPlatform.Engine.Data;
using AgentPlatform.Engine.Tasks;
using AgentPlatform.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Xunit.Abstractions;
using static AgentPlatform.Tests.Infrastructure.TestNames;

namespace AgentPlatform.Tests.Billing;

/// <summary>
/// The usage ledger against the real Api, Worker, Postgres and Redis: every billable call is one entry, the entries add
/// up to the tasks' own costs to the last digit, and none is lost to a shutdown, a Redis restart or a Postgres outage.
/// </summary>
[Collection(PlatformCollection.Name)]
public sealed class UsageLedgerTests(PlatformFixture platform, ITestOutputHelper output) : IAsyncLifetime
{
    private HttpClient Admin => platform.Client(PlatformFixture.AdminKey);
    private readonly List<string> _agents = [];

    public Task InitializeAsync() => Task.CompletedTask;

    /// <summary>The agents a test made go away with it: left behind, they would take part in other tests' routing.</summary>
    public async Task DisposeAsync()
    {
        foreach (var agent in _agents) await Admin.DeleteAsync($"/admin/agents/{agent}");
    }

    private async Task<(Guid Id, HttpClient Client)> NewKeyAsync()
    {
        var created = await (await Admin.PostAsJsonAsync("/admin/keys", new { name = Unique("ledger"), tier = "enterprise" })).JsonAsync();
        return (Guid.Parse(created["id"]!.GetValue<string>()), platform.Client(created["key"]!.GetValue<string>()));
    }

    private async Task PutAgentAsync(string name, string model, decimal inputPer1K, decimal outputPer1K, string[]? tools = null,
        int? contextWindow = null)
    {
        var definition = new JsonObject
        {
            ["description"] = $"Zzledger fixture {name}.",
            ["system_prompt"] = "You answer.",
            ["keywords"] = new JsonArray("zzledger"),
            ["models"] = new JsonArray(new JsonObject
            {
                ["provider"] = "default", ["model"] = model, ["input_per_1k"] = inputPer1K, ["output_per_1k"] = outputPer1K, ["cost_tier"] = 1,
            }),
        };
        if (tools is not null) definition["tools"] = new JsonArray(tools.Select(t => (JsonNode?)t).ToArray());
        if (contextWindow is not null) (definition["max_output_tokens"], definition["context_window_tokens"]) = (100, contextWindow);
        _agents.Add(name);
        var response = await Admin.PutAsJsonAsync($"/admin/agents/{name}", definition);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
    }

    private async Task<List<UsageEntry>> LedgerAsync(Guid keyId)
    {
        await using var scope = platform.Api.Services.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<AgentDbContext>().UsageLedger.AsNoTracking()
            .Where(e => e.ApiKeyId == keyId).ToListAsync();
    }

    private async Task<List<AgentTask>> TasksAsync(Guid keyId)
    {
        await using var scope = platform.Api.Services.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<AgentDbContext>().Tasks.AsNoTracking()
            .Where(t => t.ApiKeyId == keyId).ToListAsync();
    }

    private static (decimal Cost, long Input, long Output) TaskCosts(IEnumerable<UsageEntry> entries)
    {
        var charged = entries.Where(e => UsageKinds.IsTaskCost(e.Kind)).ToList();
        return (charged.Sum(e => e.CostUsd), charged.Sum(e => e.InputTokens), charged.Sum(e => e.OutputTokens));
    }

    private static (decimal Cost, long Input, long Output) Of(IEnumerable<AgentTask> tasks)
    {
        var list = tasks.ToList();
        return (list.Sum(t => t.CostUsd ?? 0m), list.Sum(t => (long)(t.PromptTokens ?? 0)), list.Sum(t => (long)(t.CompletionTokens ?? 0)));
    }

    /// <summary>Waits until every task of the key is final and the ledger's task entries add up to the tasks (or the time is up).</summary>
    private async Task<(List<AgentTask> Tasks, List<UsageEntry> Ledger)> SettledAsync(Guid keyId, int seconds = 20)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            // Calls outside tasks (/v1/embeddings) are the Api's alone: written once its buffer is empty.
            var apiWritten = platform.Api.Services.GetRequiredService<UsageLedger>().Unwritten == 0;
            var tasks = await TasksAsync(keyId);
            var ledger = await LedgerAsync(keyId);
            if ((apiWritten && tasks.All(t => t.IsFinal) && Of(tasks) == TaskCosts(ledger)) || DateTime.UtcNow > deadline) return (tasks, ledger);
            await Task.Delay(100);
        }
    }

    /// <summary>Each task's own entries (chat and summary calls made in its run) add up to its cost and tokens.</summary>
    private static void AssertEveryTaskMatchesItsEntries(List<AgentTask> tasks, List<UsageEntry> ledger)
    {
        foreach (var task in tasks)
        {
            var mine = ledger.Where(e => e.TaskId == task.Id).ToList();
            Assert.True(Of([task]) == TaskCosts(mine),
                $"task {task.Id} ({task.Status}, {task.Strategy}, \"{task.Input}\"): task {Of([task])}, ledger {TaskCosts(mine)}");
        }
        Assert.All(ledger.Where(e => UsageKinds.IsTaskCost(e.Kind)), e => Assert.Contains(tasks, t => t.Id == e.TaskId));
    }

    [Fact]
    public async Task After_a_mixed_run_the_ledger_adds_up_to_the_tasks_costs_plus_the_embeddings_exactly()
    {
        var (keyId, client) = await NewKeyAsync();
        var (a, b, slow, tooly, tiny) = (Unique("led-a"), Unique("led-b"), Unique("led-slow"), Unique("led-tool"), Unique("led-tiny"));
        var (ma, mb, mslow, mtool, mtiny) = (Unique("m-a"), Unique("m-b"), Unique("m-slow"), Unique("m-tool"), Unique("m-tiny"));
        platform.Llm.ScriptModel(ma, new LlmStep(Content: "answer a", PromptTokens: 123, CompletionTokens: 45));
        platform.Llm.ScriptModel(mb, new LlmStep(Content: "answer b", PromptTokens: 77, CompletionTokens: 31));
        // The parallel winner answers after 600 ms; by then the tool agent's first call was answered and its second hangs.
        platform.Llm.ScriptModel(mslow, new LlmStep(Delay: TimeSpan.FromMilliseconds(600), Content: "slow but first", PromptTokens: 11, CompletionTokens: 7));
        platform.Llm.ScriptModel(mtool,
            new LlmStep(ToolCalls: [new ToolCallStep("calculator", """{"expression":"6*7"}""")], PromptTokens: 60, CompletionTokens: 20),
            new LlmStep(Delay: TimeSpan.FromSeconds(20), Content: "too late"));
        var words = string.Join(" ", Enumerable.Range(0, 120).Select(i => $"word{i}"));
        platform.Llm.ScriptModel(mtiny, new LlmStep(Content: "Reply " + words, PromptTokens: 500, CompletionTokens: 130));
        await PutAgentAsync(a, ma, 0.001m, 0.002m);
        await PutAgentAsync(b, mb, 0.0031m, 0.0047m);
        await PutAgentAsync(slow, mslow, 0.0007m, 0.0009m);
        await PutAgentAsync(tooly, mtool, 0.0013m, 0.0017m, tools: ["calculator"]);
        await PutAgentAsync(tiny, mtiny, 0.001m, 0.002m, contextWindow: 1600);
        var toolMarker = Unique("led-toolloop");
        platform.Llm.Script(toolMarker, new LlmStep(ToolCalls: [new ToolCallStep("calculator", """{"expression":"2*(3+4)"}""")]),
            new LlmStep(Content: "The answer is 14.", PromptTokens: 210, CompletionTokens: 12));
        var cancelMarker = Unique("led-cancel");
        platform.Llm.Script(cancelMarker, new LlmStep(ToolCalls: [new ToolCallStep("calculator", """{"expression":"1+1"}""")], PromptTokens: 90, CompletionTokens: 9),
            new LlmStep(Delay: TimeSpan.FromSeconds(30)));
        var embeddingCallsBefore = platform.Llm.EmbeddingCalls;

        // Sync, async (the Worker), parallel with a loser cut short mid tool loop, cascade, a tool loop.
        Assert.Equal(HttpStatusCode.OK, (await client.ExecuteAsync(new { task = "sync one", agent_type = a })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.ExecuteAsync(new { task = "sync two", agent_type = b })).StatusCode);
        var queued = new List<string>();
        for (var i = 0; i < 3; i++)
            queued.Add((await (await client.ExecuteAsync(new { task = $"async {i}", agent_type = i % 2 == 0 ? a : b, async_execution = true }))
                .JsonAsync())["task_id"]!.GetValue<string>());
        var parallel = await (await client.ExecuteAsync(new { task = "parallel question", strategy = "parallel", agents = new[] { slow, tooly, b } })).JsonAsync();
        Assert.Equal(slow, parallel["agent"]!.GetValue<string>());
        Assert.Contains(parallel["runs"]!.AsArray(), r => r!["agent"]!.GetValue<string>() == tooly && r["outcome"]!.GetValue<string>() == "cancelled");
        var cascade = await (await client.ExecuteAsync(new { task = "cascade question", strategy = "cascade", agents = new[] { a, b } })).JsonAsync();
        Assert.Equal("cascade", cascade["strategy"]!.GetValue<string>());
        var tools = await (await client.ExecuteAsync(new { task = $"{toolMarker} what is 2*(3+4)?", agent_type = "general" })).JsonAsync();
        Assert.Equal("The answer is 14.", tools["result"]!.GetValue<string>());

        // A conversation whose fourth turn no longer fits the window: a summary call, then the turn; one turn streamed.
        var session = Unique("led-session");
        for (var i = 1; i <= 4; i++)
        {
            var turn = await client.PostAsJsonAsync("/agent/chat", new { message = $"turn{i} {words}", session_id = session, agent_type = tiny });
            Assert.True(turn.IsSuccessStatusCode, await turn.Content.ReadAsStringAsync());
        }
        var streamed = await client.PostAsJsonAsync("/agent/chat/stream", new { message = "a streamed turn", agent_type = a });
        Assert.Contains("event: done", await streamed.Content.ReadAsStringAsync());

        // A sync run cancelled after its first call was answered.
        var cancelled = client.ExecuteAsync(new { task = $"{cancelMarker} run", agent_type = "general" });
        await HttpExtensions.WaitUntilAsync(() => Task.FromResult(platform.Llm.CallsFor(cancelMarker).Count(c => !c.Completed) == 2), what: "the second call");
        var cancelledId = (await TasksAsync(keyId)).Single(t => t.Input == $"{cancelMarker} run").Id;
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync($"/agent/tasks/{cancelledId}/cancel", null)).StatusCode);
        Assert.Equal((HttpStatusCode)499, (await cancelled).StatusCode);

        // Embeddings for the client.
        var embedded = await (await client.PostAsJsonAsync("/v1/embeddings", new { model = PlatformFixture.EmbeddingModel, input = new[] { "alpha beta gamma", "delta" } }))
            .JsonAsync();
        foreach (var id in queued) Assert.Equal("completed", (await client.WaitForFinalAsync(id))["status"]!.GetValue<string>());

        var (tasks, ledger) = await SettledAsync(keyId);
        output.WriteLine($"{tasks.Count} tasks, {ledger.Count} ledger entries: " +
            string.Join(", ", ledger.GroupBy(e => e.Kind).Select(g => $"{g.Key} ×{g.Count()} ${g.Sum(e => e.CostUsd)}")));

        // The key's tasks (every status) cost exactly what the ledger's chat and summary entries say, task by task.
        Assert.Equal(Of(tasks), TaskCosts(ledger));
        AssertEveryTaskMatchesItsEntries(tasks, ledger);
        Assert.Contains(tasks, t => t.Status == Engine.Tasks.TaskStatus.Cancelled && t.CostUsd > 0);
        Assert.Contains(tasks, t => t.IsAsync && t.Status == Engine.Tasks.TaskStatus.Completed);
        Assert.Contains(ledger, e => e.Kind == UsageKinds.Summary && e.Agent == tiny && e.SessionId == session && e.CostUsd > 0);
        Assert.Contains(ledger, e => e.Kind == UsageKinds.Chat && e.Agent == tooly && e.CostUsd == 0.000112m); // the cut-short loser: 60 × 0.0013 + 20 × 0.0017
        // Embedding calls at the provider are entries of their own: memory recall in the chat turns (one each, unless the
        // recall gave up after Memory:RecallTimeout: a call without an answer is not billed) and /v1/embeddings — never more
        // entries than calls the provider received.
        var embeddings = ledger.Where(e => e.Kind == UsageKinds.Embedding).ToList();
        output.WriteLine($"{platform.Llm.EmbeddingCalls - embeddingCallsBefore} embedding calls at the provider, {embeddings.Count} entries");
        Assert.InRange(embeddings.Count, 2, platform.Llm.EmbeddingCalls - embeddingCallsBefore);
        Assert.All(embeddings.Where(e => e.TaskId is not null), e => Assert.NotNull(tasks.Single(t => t.Id == e.TaskId).SessionId));
        Assert.All(embeddings, e => Assert.Equal(PlatformFixture.EmbeddingModel, e.Model));
        Assert.Contains(embeddings, e => e.TaskId is null && e.InputTokens == embedded["usage"]!["prompt_tokens"]!.GetValue<long>()
                                         && e.CostUsd == embedded["agent_platform"]!["cost_usd"]!.GetValue<decimal>() && e.CostUsd > 0);
        // So the key's total is the tasks' costs plus its embeddings, to the last digit.
        Assert.Equal(tasks.Sum(t => t.CostUsd ?? 0m) + embeddings.Sum(e => e.CostUsd), ledger.Sum(e => e.CostUsd));

        // GET /usage says the same, and nothing is written twice later.
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        var usage = await (await client.GetAsync("/usage?group_by=kind")).JsonAsync();
        var again = await LedgerAsync(keyId);
        Assert.Equal(ledger.Count, again.Count);
        Assert.Equal(ledger.Count, usage["totals"]!["calls"]!.GetValue<long>());
        Assert.Equal(ledger.Sum(e => e.CostUsd), usage["totals"]!["cost_usd"]!.GetValue<decimal>());
        Assert.Equal(ledger.Sum(e => e.InputTokens), usage["totals"]!["input_tokens"]!.GetValue<long>());
        Assert.Equal(embeddings.Sum(e => e.CostUsd),
            usage["groups"]!.AsArray().Single(g => g!["group"]!.GetValue<string>() == "embedding")!["cost_usd"]!.GetValue<decimal>());
    }

    [Fact]
    public async Task Routing_embeddings_made_in_the_request_before_the_task_are_the_callers()
    {
        var (agent, model) = (Unique("led-route"), Unique("m-route"));
        platform.Llm.ScriptModel(model, new LlmStep(Content: "routed", PromptTokens: 30, CompletionTokens: 10));
        await PutAgentAsync(agent, model, 0.001m, 0.002m);
        var created = await (await Admin.PostAsJsonAsync("/admin/keys", new { name = Unique("ledger"), tier = "enterprise", allowed_agents = new[] { agent } }))
            .JsonAsync();
        var keyId = Guid.Parse(created["id"]!.GetValue<string>());
        var client = platform.Client(created["key"]!.GetValue<string>());
        var before = platform.Llm.EmbeddingCalls;

        var body = await (await client.ExecuteAsync(new { task = "which agent answers this?", agent_type = "auto" })).JsonAsync();

        Assert.Equal(agent, body["agent"]!.GetValue<string>());
        Assert.Equal(PlatformFixture.EmbeddingModel, body["routing"]!["embeddings"]!.GetValue<string>());
        var (tasks, ledger) = await SettledAsync(keyId);
        var routing = Assert.Single(ledger, e => e.Kind == UsageKinds.Embedding);
        Assert.Equal(1, platform.Llm.EmbeddingCalls - before);
        Assert.Null(routing.TaskId); // embedded before the task existed, in the request
        Assert.True(routing.CostUsd > 0 && routing.InputTokens > 0);
        Assert.Equal(Of(tasks), TaskCosts(ledger));
    }

    [Fact]
    public async Task Entries_a_worker_still_holds_are_written_when_it_shuts_down_cleanly_right_after_its_tasks()
    {
        var (keyId, client) = await NewKeyAsync();
        var (agent, model) = (Unique("led-shut"), Unique("m-shut"));
        platform.Llm.ScriptModel(model, new LlmStep(Content: "done", PromptTokens: 321, CompletionTokens: 123));
        await PutAgentAsync(agent, model, 0.0015m, 0.0025m);
        // A minute between writes: whatever the Worker recorded is still in its memory when it is told to stop.
        var settings = platform.Settings();
        settings["Usage__FlushInterval"] = "00:01:00";
        await platform.Worker.StopGracefullyAsync();
        var worker = new WorkerProcess(settings);
        try
        {
            await worker.StartAsync();
            var ids = new List<string>();
            for (var i = 0; i < 8; i++)
                ids.Add((await (await client.ExecuteAsync(new { task = $"shutdown {i}", agent_type = agent, async_execution = true })).JsonAsync())["task_id"]!.GetValue<string>());
            foreach (var id in ids) Assert.Equal("completed", (await client.WaitForFinalAsync(id))["status"]!.GetValue<string>());
            Assert.DoesNotContain(await LedgerAsync(keyId), e => e.Kind == UsageKinds.Chat);

            var clock = Stopwatch.StartNew();
            await worker.StopGracefullyAsync();
            output.WriteLine($"The Worker stopped in {clock.ElapsedMilliseconds} ms");

            var ledger = await LedgerAsync(keyId);
            var tasks = await TasksAsync(keyId);
            Assert.Equal(8, ledger.Count(e => e.Kind == UsageKinds.Chat));
            Assert.Equal(Of(tasks), TaskCosts(ledger));
            AssertEveryTaskMatchesItsEntries(tasks, ledger);
            Assert.Equal(8 * (321 * 0.0015m + 123 * 0.0025m) / 1000, TaskCosts(ledger).Cost);
        }
        finally
        {
            await worker.KillAsync();
            await platform.Worker.StartAsync();
        }
    }

    [Fact]
    public async Task No_entry_is_lost_when_redis_restarts_in_the_middle_of_a_run()
    {
        var (keyId, client) = await NewKeyAsync();
        var (agent, model) = (Unique("led-redis"), Unique("m-redis"));
        platform.Llm.ScriptModel(model, new LlmStep(Delay: TimeSpan.FromMilliseconds(100), Content: "ok", PromptTokens: 41, CompletionTokens: 17));
        await PutAgentAsync(agent, model, 0.0011m, 0.0019m);
        var statuses = new ConcurrentBag<int>();
        using var stop = new CancellationTokenSource();
        async Task Loop(bool async)
        {
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                using var response = await client.ExecuteAsync(new { task = $"redis {(async ? "async" : "sync")} {i}", agent_type = agent, async_execution = async });
                statuses.Add((int)response.StatusCode);
                await Task.Delay(50);
            }
        }

        var load = Task.WhenAll(Loop(false), Loop(true), Loop(false));
        await Task.Delay(TimeSpan.FromSeconds(2));
        var outageFrom = DateTimeOffset.UtcNow;
        await platform.Redis.StopAsync();
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(3));
        }
        finally
        {
            await platform.Redis.StartAgainAsync();
        }
        var outageTo = DateTimeOffset.UtcNow;
        await Task.Delay(TimeSpan.FromSeconds(2));
        await stop.CancelAsync();
        await load;

        var (tasks, ledger) = await SettledAsync(keyId, seconds: 30);
        output.WriteLine($"{statuses.Count} requests ({string.Join(" ", statuses.GroupBy(s => s).Select(g => $"{g.Key}×{g.Count()}"))}), " +
            $"{tasks.Count} tasks, {tasks.Count(t => t.CreatedAt >= outageFrom && t.CreatedAt < outageTo)} of them during the outage; {ledger.Count} entries");
        Assert.Contains(tasks, t => t.CreatedAt >= outageFrom && t.CreatedAt < outageTo && t.Status == Engine.Tasks.TaskStatus.Completed);
        Assert.All(tasks, t => Assert.True(t.IsFinal, $"task {t.Id} is {t.Status}"));
        Assert.Equal(Of(tasks), TaskCosts(ledger));
        AssertEveryTaskMatchesItsEntries(tasks, ledger);
        Assert.Equal(tasks.Count(t => t.Status == Engine.Tasks.TaskStatus.Completed), ledger.Count(e => e.Kind == UsageKinds.Chat));
    }

    [Fact]
    public async Task A_call_priced_while_postgres_is_down_reaches_the_ledger_once_it_is_back()
    {
        var (keyId, client) = await NewKeyAsync();
        var (agent, model) = (Unique("led-pg"), Unique("m-pg"));
        platform.Llm.ScriptModel(model, new LlmStep(Delay: TimeSpan.FromSeconds(2), Content: "answered in the outage", PromptTokens: 250, CompletionTokens: 50));
        await PutAgentAsync(agent, model, 0.002m, 0.004m);
        var ledger = platform.Api.Services.GetRequiredService<UsageLedger>();

        var request = client.ExecuteAsync(new { task = "priced in an outage", agent_type = agent });
        await HttpExtensions.WaitUntilAsync(() => Task.FromResult(platform.Llm.CallsForModel(model).Count == 1), what: "the LLM call");
        await platform.Postgres.StopAsync();
        try
        {
            // The call is answered and priced now; the writer cannot reach Postgres and keeps the entry.
            await HttpExtensions.WaitUntilAsync(() => Task.FromResult(ledger.UnwrittenWhere(e => e.ApiKeyId == keyId && e.Kind == UsageKinds.Chat).Count == 1),
                what: "the entry to be recorded");
            await Task.Delay(TimeSpan.FromSeconds(3));
            Assert.Single(ledger.UnwrittenWhere(e => e.ApiKeyId == keyId && e.Kind == UsageKinds.Chat));
        }
        finally
        {
            await platform.Postgres.StartAgainAsync();
        }
        var back = Stopwatch.StartNew();
        using var response = await request;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var (tasks, entries) = await SettledAsync(keyId, seconds: 30);
        output.WriteLine($"The buffered entry was written {back.ElapsedMilliseconds} ms after Postgres came back");
        var task = Assert.Single(tasks);
        Assert.Equal((250 * 0.002m + 50 * 0.004m) / 1000, task.CostUsd);
        Assert.Equal(Of(tasks), TaskCosts(entries));
        Assert.Empty(ledger.UnwrittenWhere(e => e.ApiKeyId == keyId));
    }

    [Fact]
    public async Task Spent_today_counts_written_and_unwritten_entries_once_each()
    {
        var (keyId, client) = await NewKeyAsync();
        var (agent, model) = (Unique("led-spent"), Unique("m-spent"));
        platform.Llm.ScriptModel(model, new LlmStep(Content: "spent", PromptTokens: 1000, CompletionTokens: 500));
        await PutAgentAsync(agent, model, 0.001m, 0.002m);
        var ledger = platform.Api.Services.GetRequiredService<UsageLedger>();
        var now = DateTimeOffset.UtcNow;
        UsageEntry Entry(DateTimeOffset at, decimal cost) => new()
        {
            Id = Guid.CreateVersion7(), ApiKeyId = keyId, Agent = agent, Model = model, Kind = UsageKinds.Chat, InputTokens = 1, OutputTokens = 1,
            CostUsd = cost, CreatedAt = at,
        };
        ledger.Record(Entry(UsageLedger.StartOfDay(now).AddMinutes(-1), 5m)); // yesterday
        ledger.Record(Entry(now, 0.1m));
        ledger.Record(Entry(now, 0.2m));
        using (UsageScope.Begin(keyId))
            ledger.RecordCacheHit(CacheOutcomes.Exact, agent, model, 10, 5);
        Assert.Throws<ArgumentOutOfRangeException>(() => ledger.RecordCacheHit("maybe", agent, model));

        // At once, from this instance's memory; then the same once written; then with a real task's call added.
        Assert.Equal(0.3m, await ledger.SpentTodayAsync(keyId));
        Assert.Equal(0.3m, await ledger.SpentTodayByAgentAsync(agent));
        await HttpExtensions.WaitUntilAsync(() => Task.FromResult(ledger.UnwrittenWhere(e => e.ApiKeyId == keyId).Count == 0), what: "the write");
        Assert.Equal(0.3m, await ledger.SpentTodayAsync(keyId));
        Assert.Equal(0.3m, await ledger.SpentTodayByAgentAsync(agent));
        var body = await (await client.ExecuteAsync(new { task = "spend a little", agent_type = agent })).JsonAsync();
        Assert.Equal(0.002m, body["cost_usd"]!.GetValue<decimal>());
        Assert.Equal(0.302m, await ledger.SpentTodayAsync(keyId));
        Assert.Equal(0.302m, await ledger.SpentTodayByAgentAsync(agent));
        Assert.Contains(await LedgerAsync(keyId), e => e.CacheOutcome == CacheOutcomes.Exact && e.CostUsd == 0 && e.InputTokens == 10);
        // Another instance reads what this one wrote.
        var second = platform.StartExtraApi().Services.GetRequiredService<UsageLedger>();
        await HttpExtensions.WaitUntilAsync(async () => await second.SpentTodayAsync(keyId) == 0.302m, seconds: 5, what: "the other instance to see the spend");
    }

    [Fact]
    public async Task A_full_buffer_refuses_new_entries_and_counts_them_instead_of_growing()
    {
        var api = platform.StartExtraApi(overrides: new Dictionary<string, string>
        {
            ["Usage__FlushInterval"] = "00:00:00.200",
            ["Usage__MaxBatchSize"] = "20",
            ["Usage__MaxBufferedEntries"] = "20",
        });
        var ledger = api.Services.GetRequiredService<UsageLedger>();
        var keyId = Guid.NewGuid();

        // Far faster than batches of 20 can be written: the buffer fills, and what does not fit is refused and counted.
        var most = 0;
        using (UsageScope.Begin(keyId))
        {
            for (var i = 0; i < 1000; i++)
            {
                ledger.Record(UsageKinds.Chat, "bounded", "m", 1, 1, 0.01m);
                most = Math.Max(most, ledger.Unwritten);
            }
        }

        Assert.InRange(most, 1, 20);
        Assert.True(ledger.Refused > 0, "nothing was refused");
        // Every entry is either written or counted as refused.
        await HttpExtensions.WaitUntilAsync(async () => (await LedgerAsync(keyId)).Count + ledger.Refused == 1000, seconds: 10,
            what: "the buffered entries");
        Assert.Equal(0, ledger.Unwritten);
    }

    [Theory]
    [InlineData("Usage__FlushInterval", "00:00:00", "Usage:FlushInterval")]
    [InlineData("Usage__MaxBatchSize", "0", "Usage:MaxBatchSize")]
    [InlineData("Usage__MaxBufferedEntries", "10", "Usage:MaxBufferedEntries")]
    [InlineData("Usage__MaxRangeDays", "0", "Usage:MaxRangeDays")]
    public void A_bad_usage_setting_is_refused_with_a_message_naming_it(string key, string value, string named)
    {
        // The ledger's own registration, without a whole Api: disposing a started Api host mid-run breaks Hangfire's
        // process-wide state for the other tests (see PlatformFixture.StartExtraApi).
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection([new(key.Replace("__", ":"), value)]);
        builder.AddUsageLedger();
        using var host = builder.Build();

        var error = Assert.Throws<OptionsValidationException>(() => host.Services.GetRequiredService<IOptions<UsageOptions>>().Value);

        Assert.Contains(named, error.Message);
    }

    [Fact]
    public async Task Figures_entries_reach_postgres_within_one_flush_interval_and_a_burst_is_written_in_full_batches()
    {
        var (keyId, client) = await NewKeyAsync();
        var (agent, model) = (Unique("led-lag"), Unique("m-lag"));
        platform.Llm.ScriptModel(model, new LlmStep(Content: "ok", PromptTokens: 10, CompletionTokens: 5));
        await PutAgentAsync(agent, model, 0.001m, 0.001m);

        // Lag: from the sync answer to its entry being in Postgres (Usage:FlushInterval is 1 s).
        var lags = new ConcurrentBag<double>();
        await Parallel.ForEachAsync(Enumerable.Range(0, 12), new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (i, _) =>
        {
            // At a random moment: a request right after the previous entry showed up would start right after a write.
            await Task.Delay(Random.Shared.Next(0, 1000));
            var body = await (await client.ExecuteAsync(new { task = $"lag {i}", agent_type = agent })).JsonAsync();
            var taskId = Guid.Parse(body["task_id"]!.GetValue<string>());
            var clock = Stopwatch.StartNew();
            await HttpExtensions.WaitUntilAsync(async () =>
            {
                await using var scope = platform.Api.Services.CreateAsyncScope();
                return await scope.ServiceProvider.GetRequiredService<AgentDbContext>().UsageLedger.AnyAsync(e => e.TaskId == taskId);
            }, seconds: 10, what: "the entry in Postgres");
            lags.Add(clock.Elapsed.TotalMilliseconds);
        });
        var sorted = lags.Order().ToList();
        output.WriteLine($"Answer → entry in Postgres: min {sorted[0]:0} ms, p50 {sorted[sorted.Count / 2]:0} ms, max {sorted[^1]:0} ms (flush interval 1000 ms)");
        Assert.True(sorted[^1] < 1000 + 500, $"an entry took {sorted[^1]:0} ms to be written");

        // A burst of 20,000 entries: Record never waits, and full batches are written at once, not one per interval.
        var writes = new ConcurrentBag<double>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) => { if (instrument.Name == "agent_usage_ledger_write_duration") l.EnableMeasurementEvents(instrument); };
        listener.SetMeasurementEventCallback<double>((_, seconds, _, _) => writes.Add(seconds * 1000));
        listener.Start();
        var ledger = platform.Api.Services.GetRequiredService<UsageLedger>();
        var burstKey = Guid.NewGuid();
        const int count = 20_000;
        var recording = Stopwatch.StartNew();
        using (UsageScope.Begin(burstKey))
        {
            for (var i = 0; i < count; i++) ledger.Record(UsageKinds.Chat, agent, model, 100, 20, 0.00012345m);
        }
        recording.Stop();
        var written = Stopwatch.StartNew();
        await HttpExtensions.WaitUntilAsync(async () => (await LedgerAsync(burstKey)).Count == count, seconds: 15, what: "the burst in Postgres");
        written.Stop();
        var batches = writes.Order().ToList();
        output.WriteLine($"Recording {count} entries took {recording.Elapsed.TotalMilliseconds:0} ms ({recording.Elapsed.TotalMicroseconds / count:0.00} µs each); " +
            $"all in Postgres {written.ElapsedMilliseconds} ms later; {batches.Count} batch writes of up to 1,000: p50 {batches[batches.Count / 2]:0.0} ms, max {batches[^1]:0.0} ms");
        Assert.Equal(count * 0.00012345m, (await LedgerAsync(burstKey)).Sum(e => e.CostUsd));
        Assert.True(recording.Elapsed.TotalMicroseconds / count < 50, "Record must not wait");
        // Twenty batches one interval apart would take 20 s.
        Assert.True(written.Elapsed < TimeSpan.FromSeconds(6), $"the burst took {written.Elapsed} to write");
    }
}
