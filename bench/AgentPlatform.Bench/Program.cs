using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using AgentPlatform.Tests.Infrastructure;

// Benchmarks: the platform's own overhead, each measured against a baseline in the same run.
//   foundation: 1. sync added latency: POST /agent/execute vs. calling the LLM double directly
//               2. enqueue→start latency of an async task with an idle Worker (created_at → started_at)
//               3. throughput: tasks per second one Worker completes with an instant LLM double
//   engine:     4. router latency (in process, local and provider embeddings; and end to end: auto vs a named agent)
//               5. parallel vs sequential wall time of three agents with the LLM double at 200 ms
//   memory:     6. POST /agent/memories and a search through the Api; the embedded store's search by tenant size
var suite = args.FirstOrDefault() ?? "all";
var iterations = args.Length > 1 ? int.Parse(args[1]) : 200;
var platform = new PlatformFixture();
await platform.InitializeAsync();
try
{
    if (suite is "all" or "foundation") await Foundation();
    if (suite is "all" or "engine") await Engine();
    if (suite is "all" or "memory") await Memory();
}
finally
{
    await platform.DisposeAsync();
}

async Task Foundation()
{
    var key = await platform.CreateKeyAsync("enterprise");
    var api = platform.Client(key);
    using var direct = new HttpClient { BaseAddress = new Uri(platform.Llm.BaseUrl + "/") };

    // Warm both paths (JIT, connection pools).
    for (var i = 0; i < 20; i++)
    {
        await api.ExecuteAsync(new { task = "warm up" });
        await direct.PostAsJsonAsync("chat/completions", ChatBody("warm up"));
    }

    var directMs = new List<double>();
    var viaApiMs = new List<double>();
    for (var i = 0; i < iterations; i++)
    {
        // Interleaved, so both see the same machine load.
        directMs.Add(await TimeAsync(async () => (await direct.PostAsJsonAsync("chat/completions", ChatBody($"bench {i}"))).EnsureSuccessStatusCode()));
        viaApiMs.Add(await TimeAsync(async () => (await api.ExecuteAsync(new { task = $"bench {i}", agent_type = "general" })).EnsureSuccessStatusCode()));
    }
    Report("LLM double called directly (baseline)", directMs);
    Report("sync POST /agent/execute", viaApiMs);
    Console.WriteLine($"added latency: median {Percentile(viaApiMs, 50) - Percentile(directMs, 50):0.00} ms, " +
                      $"p95 {Percentile(viaApiMs, 95) - Percentile(directMs, 95):0.00} ms; " +
                      $"ratio (api/direct) median {Percentile(viaApiMs, 50) / Percentile(directMs, 50):0.0}x");

    // Enqueue→start with an idle Worker: one task at a time, each waited to completion.
    var startMs = new List<double>();
    for (var i = 0; i < 50; i++)
    {
        var accepted = await (await api.ExecuteAsync(new { task = $"latency {i}", async_execution = true })).JsonAsync();
        var final = await api.WaitForFinalAsync(accepted["task_id"]!.GetValue<string>());
        startMs.Add((final["started_at"]!.GetValue<DateTimeOffset>() - final["created_at"]!.GetValue<DateTimeOffset>()).TotalMilliseconds);
    }
    Report("async enqueue→start (idle worker)", startMs);

    // Throughput: a burst of async tasks, timed from the first enqueue to the last completion.
    const int burst = 500;
    var clock = Stopwatch.StartNew();
    var ids = new List<string>();
    foreach (var chunk in Enumerable.Range(0, burst).Chunk(25))
    {
        var accepted = await Task.WhenAll(chunk.Select(i => api.ExecuteAsync(new { task = $"throughput {i}", async_execution = true })));
        foreach (var response in accepted) ids.Add((await response.JsonAsync())["task_id"]!.GetValue<string>());
    }
    var enqueueSeconds = clock.Elapsed.TotalSeconds;
    foreach (var id in ids) await api.WaitForFinalAsync(id, seconds: 300);
    Console.WriteLine($"throughput: {burst} tasks enqueued in {enqueueSeconds:0.0} s, all completed in {clock.Elapsed.TotalSeconds:0.0} s " +
                      $"= {burst / clock.Elapsed.TotalSeconds:0.0} tasks/s (one Worker, WorkerCount 20, instant LLM double)");
}

async Task Engine()
{
    var key = await platform.CreateKeyAsync("enterprise");
    var api = platform.Client(key);
    var admin = platform.Client(PlatformFixture.AdminKey);
    var prompts = System.Text.Json.JsonSerializer.Deserialize<List<JsonObject>>(
        await File.ReadAllTextAsync(Path.Combine(AppContext.BaseDirectory, "Routing", "routing-set.json")))!
        .Select(p => p["prompt"]!.GetValue<string>()).ToList();

    // 4a. The router in process: embeddings + track records (Redis) + scoring.
    var services = platform.Api.Services;
    var registry = (AgentPlatform.Engine.Agents.AgentRegistry)services.GetService(typeof(AgentPlatform.Engine.Agents.AgentRegistry))!;
    var stats = (AgentPlatform.Engine.Routing.AgentStats)services.GetService(typeof(AgentPlatform.Engine.Routing.AgentStats))!;
    var breakers = (AgentPlatform.Engine.Llm.CircuitBreakers)services.GetService(typeof(AgentPlatform.Engine.Llm.CircuitBreakers))!;
    var options = (Microsoft.Extensions.Options.IOptionsMonitor<AgentPlatform.Engine.Routing.RouterOptions>)services.GetService(
        typeof(Microsoft.Extensions.Options.IOptionsMonitor<AgentPlatform.Engine.Routing.RouterOptions>))!;
    var providerRouter = (AgentPlatform.Engine.Routing.AgentRouter)services.GetService(typeof(AgentPlatform.Engine.Routing.AgentRouter))!;
    var localRouter = new AgentPlatform.Engine.Routing.AgentRouter(registry, stats, breakers, AgentPlatform.Engine.Routing.RoutingEmbeddings.LocalOnly(), options);
    foreach (var (name, router) in new[] { ("router, local embedding", localRouter), ("router, provider embeddings (double)", providerRouter) })
    {
        for (var i = 0; i < 20; i++) await router.RouteAsync(prompts[i % prompts.Count], null, null, null, _ => true, CancellationToken.None);
        var ms = new List<double>();
        for (var i = 0; i < 400; i++)
            ms.Add(await TimeAsync(() => router.RouteAsync(prompts[i % prompts.Count], null, null, null, _ => true, CancellationToken.None)));
        Report(name, ms);
    }

    // 4b. End to end: the same sync request with agent_type auto vs a named agent (no ranking).
    var auto = new List<double>();
    var named = new List<double>();
    for (var i = 0; i < 200; i++)
    {
        var prompt = prompts[i % prompts.Count];
        named.Add(await TimeAsync(async () => (await api.ExecuteAsync(new { task = prompt, agent_type = "general", strategy = "single" })).EnsureSuccessStatusCode()));
        auto.Add(await TimeAsync(async () => (await api.ExecuteAsync(new { task = prompt, strategy = "single" })).EnsureSuccessStatusCode()));
    }
    Report("sync request, named agent (baseline)", named);
    Report("sync request, agent_type auto", auto);
    Console.WriteLine($"router added latency end to end: median {Percentile(auto, 50) - Percentile(named, 50):0.00} ms, p95 {Percentile(auto, 95) - Percentile(named, 95):0.00} ms");

    // 5. Parallel vs sequential: three agents, each answering in 200 ms.
    platform.Llm.DefaultDelay = TimeSpan.FromMilliseconds(200);
    var agents = new[] { "bench-a", "bench-b", "bench-c" };
    foreach (var agent in agents)
        (await admin.PutAsJsonAsync($"/admin/agents/{agent}", new
        {
            description = $"Benchmark agent {agent}.", system_prompt = "Answer briefly.",
            models = new[] { new { provider = "default", model = $"{agent}-model", cost_tier = 1 } },
        })).EnsureSuccessStatusCode();
    var sequential = new List<double>();
    var parallel = new List<double>();
    var cascade = new List<double>();
    for (var i = 0; i < 10; i++)
    {
        sequential.Add(await TimeAsync(async () =>
        {
            foreach (var agent in agents) (await api.ExecuteAsync(new { task = $"sequential {i}", agent_type = agent })).EnsureSuccessStatusCode();
        }));
        parallel.Add(await TimeAsync(async () =>
            (await api.ExecuteAsync(new { task = $"parallel {i}", strategy = "parallel", agents })).EnsureSuccessStatusCode()));
        cascade.Add(await TimeAsync(async () =>
            (await api.ExecuteAsync(new { task = $"cascade {i}", strategy = "cascade", agents })).EnsureSuccessStatusCode()));
    }
    platform.Llm.DefaultDelay = TimeSpan.Zero;
    Report("three agents one after another (baseline)", sequential);
    Report("parallel, three agents", parallel);
    Report("cascade, three agents", cascade);
    Console.WriteLine($"parallel / sequential: {Percentile(parallel, 50) / Percentile(sequential, 50):0.00} (median)");
}

async Task Memory()
{
    // 6a. Through the Api: embedding (the double over HTTP) and the embedded store on Postgres.
    var api = platform.Client(await platform.CreateKeyAsync("enterprise"));
    var remember = new List<double>();
    var search = new List<double>();
    for (var i = 0; i < 100; i++)
    {
        remember.Add(await TimeAsync(async () => (await api.PostAsJsonAsync("/agent/memories",
            new { content = $"Fact number {i}: the user likes item {i * 7 % 13} and colour {i % 5}." })).EnsureSuccessStatusCode()));
        search.Add(await TimeAsync(async () => (await api.GetAsync($"/agent/memories?query=item+{i % 13}&limit=5")).EnsureSuccessStatusCode()));
    }
    Report("POST /agent/memories", remember);
    Report("GET /agent/memories?query= (100 points)", search);

    // 6b. The embedded store alone: a search scans the tenant's points (1024 dimensions), so it grows with them.
    var store = new AgentPlatform.Engine.Memory.PostgresVectorStore(Npgsql.NpgsqlDataSource.Create(platform.DatabaseConnectionString), TimeProvider.System);
    var collection = new AgentPlatform.Engine.Memory.VectorCollection("bench_vectors_1024", 1024, ["key_id"]);
    var random = new Random(7);
    float[] Vector() => Enumerable.Range(0, 1024).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
    foreach (var size in new[] { 1_000, 10_000 })
    {
        var tenant = new Dictionary<string, string> { ["key_id"] = $"tenant-{size}" };
        for (var done = 0; done < size; done += 500)
            await store.UpsertAsync(collection, Enumerable.Range(0, 500).Select(_ =>
                new AgentPlatform.Engine.Memory.VectorRecord(Guid.NewGuid(), Vector(), tenant, DateTimeOffset.UtcNow)).ToList(), CancellationToken.None);
        var ms = new List<double>();
        for (var i = 0; i < 20; i++) ms.Add(await TimeAsync(() => store.SearchAsync(collection.Name, Vector(), 5, null, tenant, CancellationToken.None)));
        Report($"store search, {size:N0} points in the tenant", ms);
    }
}

static object ChatBody(string text) => new
{
    model = PlatformFixture.Model,
    messages = new object[] { new { role = "system", content = "You are a helpful assistant." }, new { role = "user", content = text } },
};

static async Task<double> TimeAsync(Func<Task> action)
{
    var clock = Stopwatch.StartNew();
    await action();
    return clock.Elapsed.TotalMilliseconds;
}

static double Percentile(List<double> values, double p)
{
    var sorted = values.Order().ToList();
    return sorted[(int)Math.Clamp(Math.Ceiling(p / 100 * sorted.Count) - 1, 0, sorted.Count - 1)];
}

static void Report(string name, List<double> ms) =>
    Console.WriteLine($"{name,-40} n={ms.Count,4}  median {Percentile(ms, 50),8:0.00} ms  p95 {Percentile(ms, 95),8:0.00} ms");
