using System.Globalization;
using System.Text.Json;
using AgentPlatform.Engine.Memory;
using AgentPlatform.Engine.Routing;
using AgentPlatform.Tests.Infrastructure;
using AgentPlatform.Tests.Tools;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Xunit.Abstractions;

namespace AgentPlatform.Tests.Memory;

/// <summary>
/// How well memory finds what a user told it, measured on a labelled set (bench/memory-recall-set.json: 36 everyday
/// facts, 30 later questions with the facts that answer them) through the real path: LongTermMemory, the local
/// embedding, the embedded store on Postgres.
/// </summary>
[Collection(PlatformCollection.Name)]
public sealed class MemoryRecallTests(PlatformFixture platform, ITestOutputHelper output)
{
    private sealed record LabelledMemory(string Id, string Content);
    private sealed record LabelledQuery(string Query, string[] Relevant);
    private sealed record RecallSet(LabelledMemory[] Memories, LabelledQuery[] Queries);

    // Off-topic requests: with the default threshold, they should bring back (almost) nothing.
    private static readonly string[] Unrelated =
    [
        "What is the capital of Australia?", "Explain how a transistor works", "Write a haiku about autumn leaves",
        "Convert 30 degrees Celsius to Fahrenheit", "Summarise the plot of Hamlet", "What does HTTP 418 mean?",
    ];

    internal static string SetPath => Path.Combine(AppContext.BaseDirectory, "bench", "memory-recall-set.json");

    [Fact]
    public async Task Recall_at_5_on_the_labelled_set_with_the_local_embedding_stays_above_its_measured_floor()
    {
        var set = JsonSerializer.Deserialize<RecallSet>(await File.ReadAllTextAsync(SetPath), new JsonSerializerOptions(JsonSerializerDefaults.Web))!;
        var options = new MemoryOptions { CollectionPrefix = "recall" + Guid.NewGuid().ToString("N")[..8] };
        var memory = new LongTermMemory(new PostgresVectorStore(NpgsqlDataSource.Create(platform.DatabaseConnectionString), TimeProvider.System),
            RoutingEmbeddings.LocalOnly(), new FixedOptions<MemoryOptions>(options), TimeProvider.System, NullLogger<LongTermMemory>.Instance);
        var keyId = Guid.NewGuid();
        var labels = new Dictionary<Guid, string>();
        foreach (var fact in set.Memories)
            labels[(await memory.RememberAsync(keyId, null, fact.Content, null, LongTermMemory.ApiSource, default)).Id] = fact.Id;

        double recallSum = 0, strictSum = 0, reciprocalRankSum = 0;
        int relevantRecalled = 0, relevantTotal = 0, irrelevantRecalled = 0;
        foreach (var query in set.Queries)
        {
            var top5 = (await memory.SearchAsync(keyId, null, query.Query, 5, null, default)).Select(r => labels[r.Record.Id]).ToList();
            // Strict: a memory that shares nothing with the query scores about 0, and its place among ties is luck, not recall.
            var top5Strict = (await memory.SearchAsync(keyId, null, query.Query, 5, 0.05, default)).Select(r => labels[r.Record.Id]).ToList();
            strictSum += query.Relevant.Count(top5Strict.Contains) / (double)query.Relevant.Length;
            recallSum += query.Relevant.Count(top5.Contains) / (double)query.Relevant.Length;
            var firstHit = top5.FindIndex(query.Relevant.Contains);
            reciprocalRankSum += firstHit < 0 ? 0 : 1.0 / (firstHit + 1);

            // What a chat would get: RecallLimit and RecallMinScore as configured by default.
            var recalled = (await memory.RecallAsync(keyId, null, query.Query, null, default)).Select(r => labels[r.Record.Id]).ToList();
            relevantRecalled += query.Relevant.Count(recalled.Contains);
            relevantTotal += query.Relevant.Length;
            irrelevantRecalled += recalled.Count(id => !query.Relevant.Contains(id));
            if (firstHit != 0) output.WriteLine($"  top-1 miss: \"{query.Query}\" → {string.Join(", ", top5)} (relevant {string.Join(", ", query.Relevant)})");
        }
        // Where to set Memory:RecallMinScore: every query against every memory, relevant pairs apart from the rest.
        List<double> relevantScores = [], otherScores = [];
        foreach (var (text, relevant) in set.Queries.Select(q => (q.Query, q.Relevant)).Concat(Unrelated.Select(u => (u, Array.Empty<string>()))))
        {
            foreach (var result in await memory.SearchAsync(keyId, null, text, set.Memories.Length, null, default))
                (relevant.Contains(labels[result.Record.Id]) ? relevantScores : otherScores).Add(result.Score!.Value);
        }
        foreach (var threshold in new[] { 0.2, 0.25, 0.3, 0.35 })
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"min score {threshold}: {relevantScores.Count(s => s >= threshold)}/{relevantScores.Count} relevant pairs pass, "
                + $"{otherScores.Count(s => s >= threshold)}/{otherScores.Count} other pairs pass"));
        var unrelatedRecalled = 0;
        foreach (var query in Unrelated) unrelatedRecalled += (await memory.RecallAsync(keyId, null, query, null, default)).Count;

        var recallAt5 = recallSum / set.Queries.Length;
        var mrr = reciprocalRankSum / set.Queries.Length;
        var strictRecallAt5 = strictSum / set.Queries.Length;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"recall@5 = {recallAt5:0.000} (strict, hits scoring over 0.05 only: {strictRecallAt5:0.000}), MRR@5 = {mrr:0.000} "
            + $"({set.Queries.Length} queries, {set.Memories.Length} memories, local embedding)"));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"chat recall (limit {options.RecallLimit}, min score {options.RecallMinScore}): {relevantRecalled}/{relevantTotal} relevant memories recalled, "
            + $"{irrelevantRecalled} irrelevant ones alongside; {unrelatedRecalled} recalled for {Unrelated.Length} off-topic requests"));

        // Floors a little under what was measured, so a change that makes memory find less (or recall noise) fails here.
        // Measured when the set was written: recall@5 0.911 (strict 0.867), MRR@5 0.931, chat recall 21/37 with none irrelevant.
        Assert.True(recallAt5 >= 0.85, $"recall@5 {recallAt5:0.000}");
        Assert.True(strictRecallAt5 >= 0.8, $"strict recall@5 {strictRecallAt5:0.000}");
        Assert.True(mrr >= 0.85, $"MRR@5 {mrr:0.000}");
        Assert.True(relevantRecalled >= relevantTotal / 2, $"chat recall {relevantRecalled}/{relevantTotal}");
        Assert.True(irrelevantRecalled + unrelatedRecalled <= 2, $"{irrelevantRecalled} irrelevant memories recalled with relevant ones, {unrelatedRecalled} for off-topic requests");
    }
}
