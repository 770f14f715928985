using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using AgentPlatform.Tests.Infrastructure;

// Foundation benchmark: the platform's own overhead, measured against a baseline in the same run.
//   1. sync added latency: POST /agent/execute vs. calling the LLM double directly (same payload size)
//   2. enqueue→start latency of an async task with an idle Worker (created_at → started_at)
//   3. throughput: tasks per second one Worker completes with an instant LLM double
var iterations = args.Length > 0 ? int.Parse(args[0]) : 200;
var platform = new PlatformFixture();
await platform.InitializeAsync();
try
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
        viaApiMs.Add(await TimeAsync(async () => (await api.ExecuteAsync(new { task = $"bench {i}" })).EnsureSuccessStatusCode()));
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
finally
{
    await platform.DisposeAsync();
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
