using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using AgentPlatform.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

// Benchmarks: the platform's own overhead, each measured against a baseline in the same run.
//   foundation: 1. sync added latency: POST /agent/execute vs. calling the LLM double directly
//               2. enqueue→start latency of an async task with an idle Worker (created_at → started_at)
//               3. throughput: tasks per second one Worker completes with an instant LLM double (burst size: third argument)
//   worker:     per Hangfire storage (Queue:Storage), each on a fresh platform: enqueue→start idle and under a steady
//               submission rate, and the rate one Worker drains a backlog at (arguments: tasks, rate, storages)
//   engine:     4. router latency (in process, local and provider embeddings; and end to end: auto vs a named agent)
//               5. parallel vs sequential wall time of three agents with the LLM double at 200 ms
//   memory:     6. POST /agent/memories and a search through the Api; the embedded store's search by tenant size
//   router:     8. accuracy of each embedding mode on bench/router-eval-set.json (tuning and held-out parts), the routing
//                  latency each mode adds (in process, and end to end in a real Api process) and that Api process's RSS
//   cache:      7. sync request uncached (bypass, and a miss that stores) vs exact hit vs semantic hit, LLM double at 0 and 50 ms,
//                  local embedding; and the lookups alone, in process
var suite = args.FirstOrDefault() ?? "all";
if (suite is "worker")
{
    await WorkerQueue(args.Length > 1 ? int.Parse(args[1]) : 1_000, args.Length > 2 ? int.Parse(args[2]) : 200,
        args.Length > 3 ? args[3].Split(',') : ["postgres", "redis"]);
    return;
}
var iterations = args.Length > 1 ? int.Parse(args[1]) : 200;
var burst = args.Length > 2 ? int.Parse(args[2]) : 1_000;
var platform = new PlatformFixture();
await platform.InitializeAsync();
try
{
    if (suite is "all" or "foundation") await Foundation();
    if (suite is "all" or "engine") await Engine();
    if (suite is "all" or "memory") await Memory();
    if (suite is "all" or "cache") await Cache();
    if (suite is "all" or "router") await RouterSuite();
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
                      $"= {burst / clock.Elapsed.TotalSeconds:0.0} tasks/s (one Worker, instant LLM double)");
}

// The async path on each Hangfire storage, each on a fresh platform (own Postgres, Redis, Api and Worker).
async Task WorkerQueue(int tasks, int rate, string[] storages)
{
    foreach (var storage in storages)
    {
        var queued = new PlatformFixture { Overrides = new Dictionary<string, string> { ["Queue__Storage"] = storage } };
        await queued.InitializeAsync();
        try
        {
            await using (var connection = new Npgsql.NpgsqlConnection(queued.DatabaseConnectionString))
            {
                await connection.OpenAsync();
                await using var show = new Npgsql.NpgsqlCommand("SELECT current_setting('fsync') || ', synchronous_commit ' || current_setting('synchronous_commit')", connection);
                // The tests' Postgres runs without durability; DURABLE_POSTGRES=1 keeps Postgres's defaults (as ./run.sh).
                Console.WriteLine($"--- Hangfire storage: {storage}; Postgres fsync {await show.ExecuteScalarAsync()}");
            }
            await WorkerQueueOn(queued, storage, tasks, rate);
        }
        finally
        {
            await queued.DisposeAsync();
        }
    }
}

async Task WorkerQueueOn(PlatformFixture queued, string storage, int tasks, int rate)
{
    var api = queued.Client(await queued.CreateKeyAsync("enterprise"));
    // A refusal is counted and printed, not retried: the figures are about accepted tasks.
    var refusals = new System.Collections.Concurrent.ConcurrentBag<string>();
    async Task<string?> Submit(string text)
    {
        using var response = await api.ExecuteAsync(new { task = text, agent_type = "general", async_execution = true });
        if (response.IsSuccessStatusCode) return (await response.JsonAsync())["task_id"]!.GetValue<string>();
        refusals.Add($"{(int)response.StatusCode} {(await response.JsonAsync())["title"]}");
        return null;
    }
    void ReportRefusals(string phase)
    {
        if (refusals.IsEmpty) return;
        Console.WriteLine($"{storage}: {phase}: {refusals.Count} submissions refused: " +
                          string.Join(", ", refusals.GroupBy(r => r).Select(g => $"{g.Count()}× {g.Key}")));
        refusals.Clear();
    }
    // created_at → started_at and the run's timestamps, read from the task rows once every task is final.
    async Task<List<AgentPlatform.Engine.Tasks.AgentTask>> Finished(string prefix, int count)
    {
        var deadline = DateTime.UtcNow.AddMinutes(5);
        while (true)
        {
            await using var scope = queued.Api.Services.CreateAsyncScope();
            var rows = await scope.ServiceProvider.GetRequiredService<AgentPlatform.Engine.Data.AgentDbContext>().Tasks.AsNoTracking()
                .Where(t => t.Input.StartsWith(prefix)).ToListAsync();
            if ((rows.Count == count - refusals.Count && rows.All(t => t.IsFinal)) || DateTime.UtcNow > deadline)
            {
                // Figures count completed tasks; anything else is printed with its error.
                foreach (var other in rows.Where(t => t.Status != "completed").GroupBy(t => $"{t.Status}: {t.Error}"))
                    Console.WriteLine($"{storage}: {other.Count()} '{prefix}' tasks not completed ({other.Key}), e.g. {other.First().Id}");
                return rows.Where(t => t.Status == "completed").ToList();
            }
            await Task.Delay(100);
        }
    }
    // Tasks accepted together share a Hangfire job (TaskQueue): how many jobs carried these tasks.
    static string Jobs(List<AgentPlatform.Engine.Tasks.AgentTask> rows)
    {
        var jobs = rows.Select(t => t.JobId).Distinct().Count();
        return $"{jobs} Hangfire jobs for {rows.Count} tasks ({rows.Count / (double)Math.Max(1, jobs):0.0} per job)";
    }
    static List<double> StartLatencies(List<AgentPlatform.Engine.Tasks.AgentTask> rows) =>
        rows.Select(t => (t.StartedAt!.Value - t.CreatedAt).TotalMilliseconds).ToList();

    for (var i = 0; i < 50; i++) await Submit($"warm {i}");
    await Finished("warm ", 50);
    ReportRefusals("warm-up");

    // Idle: one task at a time, each waited to completion.
    for (var i = 0; i < 100; i++)
    {
        if (await Submit($"idle {i:D4}") is { } id) await api.WaitForFinalAsync(id);
    }
    Report($"{storage}: enqueue→start, idle Worker", StartLatencies(await Finished("idle ", 100)));
    ReportRefusals("idle");

    // Under load: submitted at a steady rate for 10 s, open loop (a slow answer does not slow the next submission).
    var sent = 0;
    var submissions = new List<Task>();
    var clock = Stopwatch.StartNew();
    using (var tick = new PeriodicTimer(TimeSpan.FromMilliseconds(10)))
    {
        while (clock.Elapsed < TimeSpan.FromSeconds(10) && await tick.WaitForNextTickAsync())
        {
            for (var due = (int)(clock.Elapsed.TotalSeconds * rate); sent < due; sent++) submissions.Add(Submit($"steady {sent:D6}"));
        }
    }
    await Task.WhenAll(submissions);
    var submittedIn = clock.Elapsed.TotalSeconds;
    var steady = await Finished("steady ", sent);
    Report($"{storage}: enqueue→start, {sent / submittedIn:0} tasks/s submitted", StartLatencies(steady));
    Console.WriteLine($"{storage}: steady: {Jobs(steady)}; completed at {steady.Count / (steady.Max(t => t.CompletedAt!.Value) - steady.Min(t => t.StartedAt!.Value)).TotalSeconds:0} tasks/s");
    ReportRefusals("steady");

    // Backlog: tasks submitted while the Worker is stopped, then drained; timed from the first start to the last completion.
    // What the drain cost the stores: Postgres transactions (every database client) and Redis commands, per task.
    await queued.Worker.KillAsync();
    await Parallel.ForEachAsync(Enumerable.Range(0, tasks), new ParallelOptions { MaxDegreeOfParallelism = 32 },
        async (i, _) => await Submit($"backlog {i:D6}"));
    await using var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(queued.Redis.ConnectionString + ",allowAdmin=true");
    async Task<(long Transactions, long Commands)> StoreCounters()
    {
        await using var connection = new Npgsql.NpgsqlConnection(queued.DatabaseConnectionString);
        await connection.OpenAsync();
        await using var command = new Npgsql.NpgsqlCommand("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()", connection);
        var transactions = (long)(await command.ExecuteScalarAsync())!;
        var stats = (await redis.GetServers()[0].InfoAsync("commandstats")).SelectMany(g => g)
            .Sum(e => long.Parse(e.Value.Split(',')[0].Split('=')[1]));
        return (transactions, stats);
    }
    // Postgres backends publish their counters when idle, at the latest 10 s later.
    await Task.Delay(TimeSpan.FromSeconds(11));
    var before = await StoreCounters();
    await queued.Worker.StartAsync();
    var workerCpu = queued.Worker.ProcessorTime;
    var drained = await Finished("backlog ", tasks);
    workerCpu = queued.Worker.ProcessorTime - workerCpu;
    ReportRefusals("backlog");
    await Task.Delay(TimeSpan.FromSeconds(11));
    var after = await StoreCounters();
    var seconds = (drained.Max(t => t.CompletedAt!.Value) - drained.Min(t => t.StartedAt!.Value)).TotalSeconds;
    Console.WriteLine($"{storage}: backlog of {drained.Count} tasks drained in {seconds:0.00} s = {drained.Count / seconds:0} tasks/s (one Worker, instant LLM double); " +
                      $"per task {(after.Transactions - before.Transactions) / (double)drained.Count:0.0} Postgres transactions, " +
                      $"{(after.Commands - before.Commands) / (double)drained.Count:0.0} Redis commands (Worker start-up included), " +
                      $"{workerCpu.TotalMilliseconds / drained.Count:0.00} ms of Worker CPU; {Jobs(drained)}");
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

async Task Cache()
{
    // An Api with the local embedding in process (no embedding provider), as a deployment without one runs the semantic
    // tier, and the production defaults for the key cache and the router's track records (the fixture's are 0, for its tests).
    var local = platform.StartExtraApi(overrides: new Dictionary<string, string>
    {
        ["Llm__UseProviderEmbeddings"] = "false",
        ["Auth__KeyCacheDuration"] = "00:00:05",
        ["Router__StatsCacheDuration"] = "00:00:01",
    });
    var admin = platform.Client(PlatformFixture.AdminKey);
    (await admin.PutAsJsonAsync("/admin/agents/bench-cache", new
    {
        description = "Benchmark agent with a cache.", system_prompt = "Answer briefly.",
        models = new[] { new { provider = "default", model = "bench-cache-model", input_per_1k = 0.001m, output_per_1k = 0.002m, cost_tier = 1 } },
        cache = new { enabled = true },
    })).EnsureSuccessStatusCode();
    // Hits are measured with one key (its cache holds a few entries), misses with another (each miss adds an entry).
    var api = PlatformFixture.ClientFor(local, await platform.CreateKeyAsync("enterprise"));
    var missApi = PlatformFixture.ClientFor(local, await platform.CreateKeyAsync("enterprise"));
    static async Task<string> Execute(HttpClient client, object body)
    {
        var response = await client.ExecuteAsync(body);
        response.EnsureSuccessStatusCode();
        return response.Headers.GetValues("X-Cache").Single();
    }
    const string stored = "Explain how photosynthesis works in green plants";
    const string paraphrase = "Please explain how photosynthesis works in green plants?"; // 1.0 with the local embedding, not identical
    for (var i = 0; i < 20; i++) await Execute(missApi, new { task = $"warm up {Guid.NewGuid():N}", agent_type = "bench-cache" });

    foreach (var delay in new[] { 0, 50 })
    {
        platform.Llm.DefaultDelay = TimeSpan.FromMilliseconds(delay);
        var prompt = $"{stored} (run {delay})";
        Expect("MISS", await Execute(api, new { task = prompt, agent_type = "bench-cache" }));
        var bypass = new List<double>();
        var miss = new List<double>();
        var exact = new List<double>();
        var semantic = new List<double>();
        var floor = new List<double>();
        for (var i = -50; i < iterations; i++)
        {
            if (i == 0) foreach (var list in new[] { bypass, miss, exact, semantic, floor }) list.Clear(); // the first 50 warm up
            floor.Add(await TimeAsync(async () => (await api.GetAsync("/alive")).EnsureSuccessStatusCode()));
            // Interleaved, so all four see the same machine load; each checks it was served as meant.
            bypass.Add(await TimeAsync(async () => Expect("MISS", await Execute(api, new { task = $"uncached {Guid.NewGuid():N}", agent_type = "bench-cache", cache = false }))));
            miss.Add(await TimeAsync(async () => Expect("MISS", await Execute(missApi, new { task = $"a new question {Guid.NewGuid():N}", agent_type = "bench-cache" }))));
            exact.Add(await TimeAsync(async () => Expect("HIT", await Execute(api, new { task = prompt, agent_type = "bench-cache" }))));
            semantic.Add(await TimeAsync(async () => Expect("SEMANTIC", await Execute(api, new { task = $"{paraphrase} (run {delay})", agent_type = "bench-cache" }))));
        }
        Report($"LLM {delay} ms: GET /alive (the HTTP floor)", floor);
        Report($"LLM {delay} ms: uncached (cache: false)", bypass);
        Report($"LLM {delay} ms: miss (lookup + store)", miss);
        Report($"LLM {delay} ms: exact hit", exact);
        Report($"LLM {delay} ms: semantic hit", semantic);
        Console.WriteLine($"LLM {delay} ms: median ratio to the uncached call: exact {Percentile(exact, 50) / Percentile(bypass, 50):0.00}, " +
                          $"semantic {Percentile(semantic, 50) / Percentile(bypass, 50):0.00}, miss {Percentile(miss, 50) / Percentile(bypass, 50):0.00}");
    }
    platform.Llm.DefaultDelay = TimeSpan.Zero;

    // In process: the lookups alone, and the task row's INSERT and final UPDATE that every sync request makes, hit or not.
    var services = local.Services;
    var cache = (AgentPlatform.Engine.Caching.ResponseCache)services.GetService(typeof(AgentPlatform.Engine.Caching.ResponseCache))!;
    var decision = new AgentPlatform.Engine.Routing.RoutingDecision("bench-cache", 1, "single", [], ["bench-cache"], "bench");
    var answer = new AgentPlatform.Engine.Execution.AgentRun("bench-cache", "ok", "default", "bench-cache-model", "An answer.", "stop", 10, 5, 0.001m, 1, null, []);
    async Task<List<double>> Lookups(AgentPlatform.Engine.Tasks.AgentTask task, string text, string outcome)
    {
        var caller = new AgentPlatform.Engine.Tools.ToolCaller(task.ApiKeyId, null, false);
        var ms = new List<double>();
        for (var i = 0; i < iterations + 20; i++)
        {
            var input = new AgentPlatform.Engine.Execution.RunInput(text);
            var elapsed = await TimeAsync(async () => Expect(outcome, (await cache.LookupAsync(task, decision, input, caller, CancellationToken.None)).Outcome));
            if (i >= 20) ms.Add(elapsed);
        }
        return ms;
    }
    async Task Store(AgentPlatform.Engine.Tasks.AgentTask task, string text)
    {
        var input = new AgentPlatform.Engine.Execution.RunInput(text);
        var lookup = await cache.LookupAsync(task, decision, input, new AgentPlatform.Engine.Tools.ToolCaller(task.ApiKeyId, null, false), CancellationToken.None);
        await cache.StoreAsync(lookup, new AgentPlatform.Engine.Execution.ExecutionResult("single", answer, [answer]), input);
    }
    foreach (var entries in new[] { 1, 1_000 })
    {
        var task = new AgentPlatform.Engine.Tasks.AgentTask { Id = Guid.NewGuid(), ApiKeyId = Guid.NewGuid() };
        for (var i = 1; i < entries; i++) await Store(task, $"Question {Guid.NewGuid():N} about topic {i}");
        await Store(task, stored);
        Report($"in process, {entries:N0} entries: lookup, exact hit", await Lookups(task, stored, "exact"));
        Report($"in process, {entries:N0} entries: lookup, semantic hit", await Lookups(task, paraphrase, "semantic"));
        Report($"in process, {entries:N0} entries: lookup, miss", await Lookups(task, "Something never asked before", "miss"));
    }
    var rows = new List<double>();
    var scopes = (Microsoft.Extensions.DependencyInjection.IServiceScopeFactory)services.GetService(typeof(Microsoft.Extensions.DependencyInjection.IServiceScopeFactory))!;
    for (var i = 0; i < iterations + 20; i++)
    {
        using var scope = scopes.CreateScope();
        var db = (AgentPlatform.Engine.Data.AgentDbContext)scope.ServiceProvider.GetService(typeof(AgentPlatform.Engine.Data.AgentDbContext))!;
        var elapsed = await TimeAsync(async () =>
        {
            var row = new AgentPlatform.Engine.Tasks.AgentTask
            {
                Id = Guid.CreateVersion7(), ApiKeyId = Guid.NewGuid(), Agent = "bench-cache", Input = "row", Status = "running",
                Attempts = 1, LeaseOwner = Guid.NewGuid(), CreatedAt = DateTimeOffset.UtcNow, StartedAt = DateTimeOffset.UtcNow,
            };
            db.Tasks.Add(row);
            await db.SaveChangesAsync();
            await Microsoft.EntityFrameworkCore.EntityFrameworkQueryableExtensions.ExecuteUpdateAsync(
                System.Linq.Queryable.Where(db.Tasks, t => t.Id == row.Id && t.LeaseOwner == row.LeaseOwner),
                u => u.SetProperty(t => t.Status, "completed").SetProperty(t => t.Result, "An answer.").SetProperty(t => t.CompletedAt, DateTimeOffset.UtcNow));
        });
        if (i >= 20) rows.Add(elapsed);
    }
    Report("in process: task row INSERT + final UPDATE", rows);
}

async Task RouterSuite()
{
    var set = await AgentPlatform.Tests.Routing.RouterEvaluation.LoadAsync();
    var services = platform.Api.Services;
    Console.WriteLine($"router eval set: {set.Count} prompts ({set.Count(s => s.Split == "tuning")} tuning, {set.Count(s => s.Split == "heldout")} held out), " +
                      $"{set.Select(s => s.Agent).Distinct().Count()} agents; no tie-breaker (no provider)");
    var rssBefore = RssMb(Environment.ProcessId);

    // 8a. In process: a router with fresh track records per mode. Each decision is timed; the first call (warm-up, outside the
    // figures) embeds the agents' references, later ones only the prompt. A named agent needs no ranking: that is the baseline.
    var named = new List<double>();
    var namedRouter = AgentPlatform.Tests.Routing.RouterEvaluation.Router(services, AgentPlatform.Engine.Routing.RouterEmbedding.Hashed);
    foreach (var item in set) named.Add(await TimeAsync(() => namedRouter.RouteAsync(item.Prompt, "general", null, null, _ => true, CancellationToken.None)));
    Report("in process, named agent (baseline)", named);
    var modes = new (string Name, AgentPlatform.Engine.Routing.AgentRouter Router, string Note)[]
    {
        ("hashed", AgentPlatform.Tests.Routing.RouterEvaluation.Router(services, AgentPlatform.Engine.Routing.RouterEmbedding.Hashed), ""),
        ("minilm", AgentPlatform.Tests.Routing.RouterEvaluation.Router(services, AgentPlatform.Engine.Routing.RouterEmbedding.MiniLM), ""),
        ("minilm, no hashed words (LexicalWeight 0)", AgentPlatform.Tests.Routing.RouterEvaluation.Router(services,
            AgentPlatform.Engine.Routing.RouterEmbedding.MiniLM, o => o.LexicalWeight = 0), ""),
        ("provider (LLM double over HTTP)", AgentPlatform.Tests.Routing.RouterEvaluation.Router(services, AgentPlatform.Engine.Routing.RouterEmbedding.Provider),
            "  [accuracy: the double embeds with the hashed embedding, not a model]"),
    };
    foreach (var (name, router, note) in modes)
    {
        // The provider mode needs the Api's provider embeddings: the DI router is the one wired to them.
        var active = name.StartsWith("provider") ? (AgentPlatform.Engine.Routing.AgentRouter)services.GetService(typeof(AgentPlatform.Engine.Routing.AgentRouter))! : router;
        var results = await AgentPlatform.Tests.Routing.RouterEvaluation.EvaluateAsync(active, set);
        var all = results.Values.SelectMany(r => r.LatenciesMs).ToList();
        Console.WriteLine($"{name,-45} held-out {results["heldout"].Accuracy,6:P1} ({results["heldout"].Correct}/{results["heldout"].Total})  " +
                          $"tuning {results["tuning"].Accuracy,6:P1} ({results["tuning"].Correct}/{results["tuning"].Total})  " +
                          $"routing p50 {Percentile(all, 50):0.00} ms p95 {Percentile(all, 95):0.00} ms " +
                          $"(added p50 {Percentile(all, 50) - Percentile(named, 50):0.00} ms){note}");
        Console.WriteLine($"{"",-45} strategies: {string.Join(", ", results.Values.SelectMany(r => r.Strategies).GroupBy(e => e.Key).Select(g => $"{g.Key} {g.Sum(e => e.Value)}"))}; " +
                          $"top two within the tie-breaker's margin: {results.Values.Sum(r => r.NearTies)} of {set.Count}; held-out misses with the right " +
                          $"agent second within it: {results["heldout"].MissesWithinMargin} of {results["heldout"].Total - results["heldout"].Correct}");
    }
    Console.WriteLine($"bench process RSS: {rssBefore:0} MB before the router suite, {RssMb(Environment.ProcessId):0} MB after MiniLM was loaded");

    // 8b. End to end in a real Api process per mode: sync requests with agent_type auto vs a named agent (interleaved), then
    // the process's RSS. Hangfire, EF Core and the rest are there in both: the difference is the mode's.
    foreach (var mode in new[] { "hashed", "minilm" })
    {
        await using var api = await ApiProcess.StartAsync(platform.Settings(), new Dictionary<string, string>
        {
            ["Router__Embedding"] = mode,
            ["Router__TieBreakMargin"] = "0",
            ["Router__StatsCacheDuration"] = "00:00:01",
            ["Auth__KeyCacheDuration"] = "00:00:05",
        });
        var rssIdle = RssMb(api.Pid);
        using var client = new HttpClient { BaseAddress = api.BaseAddress, Timeout = TimeSpan.FromSeconds(90) };
        client.DefaultRequestHeaders.Authorization = new("Bearer", await platform.CreateKeyAsync("enterprise"));
        for (var i = 0; i < 20; i++)
        {
            (await client.ExecuteAsync(new { task = set[i].Prompt, strategy = "single" })).EnsureSuccessStatusCode();
            (await client.ExecuteAsync(new { task = set[i].Prompt, agent_type = "general" })).EnsureSuccessStatusCode();
        }
        var auto = new List<double>();
        var byName = new List<double>();
        for (var i = 0; i < Math.Min(iterations, set.Count); i++)
        {
            var prompt = set[i % set.Count].Prompt;
            byName.Add(await TimeAsync(async () => (await client.ExecuteAsync(new { task = prompt, agent_type = "general" })).EnsureSuccessStatusCode()));
            auto.Add(await TimeAsync(async () => (await client.ExecuteAsync(new { task = prompt, strategy = "single" })).EnsureSuccessStatusCode()));
        }
        Report($"Api process, {mode}: named agent", byName);
        Report($"Api process, {mode}: agent_type auto", auto);
        Console.WriteLine($"Api process, {mode}: routing adds median {Percentile(auto, 50) - Percentile(byName, 50):0.00} ms, " +
                          $"p95 {Percentile(auto, 95) - Percentile(byName, 95):0.00} ms; RSS {rssIdle:0} MB at start, {RssMb(api.Pid):0} MB after {auto.Count + byName.Count + 40} requests");
    }
}

// VmRSS of a process, in MB (Linux).
static double RssMb(int pid) =>
    File.ReadLines($"/proc/{pid}/status").Where(l => l.StartsWith("VmRSS:")).Select(l => double.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024).First();

static void Expect(string expected, string actual)
{
    if (expected != actual) throw new InvalidOperationException($"Expected {expected}, got {actual}.");
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
    Console.WriteLine($"{name,-52} n={ms.Count,5}  median {Percentile(ms, 50),8:0.00} ms  p95 {Percentile(ms, 95),8:0.00} ms");

/// <summary>The real Api executable as a child process (as it runs in production), for its own RSS and latency.</summary>
sealed class ApiProcess : IAsyncDisposable
{
    private readonly Process _process;

    private ApiProcess(Process process, Uri baseAddress) => (_process, BaseAddress) = (process, baseAddress);

    public Uri BaseAddress { get; }
    public int Pid => _process.Id;

    public static async Task<ApiProcess> StartAsync(IReadOnlyDictionary<string, string> settings, IReadOnlyDictionary<string, string> overrides)
    {
        // The Api built beside this bench, in the same configuration (bench/AgentPlatform.Bench/bin/<configuration>/net10.0/).
        var repo = new DirectoryInfo(AppContext.BaseDirectory);
        while (!File.Exists(Path.Combine(repo.FullName, "AgentPlatform.slnx"))) repo = repo.Parent!;
        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Debug{Path.DirectorySeparatorChar}") ? "Debug" : "Release";
        var dir = Path.Combine(repo.FullName, "AgentPlatform.Api", "bin", configuration, "net10.0");
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var info = new ProcessStartInfo("dotnet", Path.Combine(dir, "AgentPlatform.Api.dll"))
        {
            WorkingDirectory = dir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        info.Environment["DOTNET_ENVIRONMENT"] = "Production";
        info.Environment["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}";
        foreach (var (key, value) in settings.Concat(overrides)) info.Environment[key] = value;
        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var api = new ApiProcess(process, new Uri($"http://127.0.0.1:{port}"));
        using var http = new HttpClient { BaseAddress = api.BaseAddress };
        await HttpExtensions.WaitUntilAsync(async () =>
        {
            try { return (await http.GetAsync("/health")).IsSuccessStatusCode; }
            catch (HttpRequestException) { return false; }
        }, seconds: 60, what: "the Api process to answer /health");
        return api;
    }

    public async ValueTask DisposeAsync()
    {
        _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
        _process.Dispose();
    }
}
