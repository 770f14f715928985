using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using AgentPlatform.Engine.Memory;
using AgentPlatform.Tests.Infrastructure;
using AgentPlatform.Tests.Tools;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace AgentPlatform.Tests.Memory;

/// <summary>An Api configured with ConnectionStrings__qdrant keeps its memories in Qdrant (the gRPC double), end to end.</summary>
[Collection(PlatformCollection.Name)]
public sealed class QdrantMemoryTests(PlatformFixture platform) : IAsyncLifetime
{
    private QdrantDouble _qdrant = null!;

    public async Task InitializeAsync() => _qdrant = await QdrantDouble.StartAsync();

    public async Task DisposeAsync() => await _qdrant.DisposeAsync();

    [Fact]
    public async Task With_qdrant_configured_memories_go_to_qdrant_and_not_to_postgres()
    {
        var api = platform.StartExtraApi(overrides: new Dictionary<string, string>
        {
            ["ConnectionStrings__qdrant"] = _qdrant.ConnectionString("qdrant-secret"),
        });
        var (key, _) = await ToolsApiTests.CreateKeyAsync(platform, null);
        var (strangerKey, _) = await ToolsApiTests.CreateKeyAsync(platform, null);
        var client = PlatformFixture.ClientFor(api, key);
        var stranger = PlatformFixture.ClientFor(api, strangerKey);

        using var created = await client.PostAsJsonAsync("/agent/memories", new { content = "The user sails a small boat on Lake Geneva.", user = "erin" });
        var memory = await created.JsonAsync();
        var id = memory["id"]!.GetValue<string>();
        using var other = await client.PostAsJsonAsync("/agent/memories", new { content = "The user collects vinyl records of jazz.", user = "erin" });
        var found = (await client.GetFromJsonAsync<JsonObject>("/agent/memories?user=erin&query=" + Uri.EscapeDataString("sailing on the lake")))!;
        var newest = (await client.GetFromJsonAsync<JsonObject>("/agent/memories?user=erin"))!;
        using var strangerDelete = await stranger.DeleteAsync($"/agent/memories/{id}");
        var strangerSearch = (await stranger.GetFromJsonAsync<JsonObject>("/agent/memories?query=" + Uri.EscapeDataString("sailing on the lake")))!;

        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal("qdrant", api.Services.GetRequiredService<LongTermMemory>().StoreName);
        Assert.Equal(id, found["memories"]![0]!["id"]!.GetValue<string>());
        Assert.True(found["memories"]![0]!["score"]!.GetValue<double>() > found["memories"]![1]!["score"]!.GetValue<double>());
        Assert.Equal("The user collects vinyl records of jazz.", newest["memories"]![0]!["content"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.NotFound, strangerDelete.StatusCode);
        Assert.Empty(strangerSearch["memories"]!.AsArray());

        // The double holds them, in a collection named after the embedding space and dimension, with its indexes.
        var collection = $"memories_{PlatformFixture.EmbeddingModel}_1024";
        Assert.Contains(collection, _qdrant.CollectionNames);
        Assert.Equal(2, _qdrant.PointCount(collection));
        Assert.Contains("key_id", _qdrant.IndexesOf(collection).Keys);
        foreach (var method in new[] { "qdrant.Collections/Create", "qdrant.Points/CreateFieldIndex", "qdrant.Points/Upsert", "qdrant.Points/Query", "qdrant.Points/Scroll" })
            Assert.Contains(_qdrant.Calls, call => call == (method, "qdrant-secret"));
        // ... and Postgres does not.
        await using (var db = NpgsqlDataSource.Create(platform.DatabaseConnectionString))
        await using (var count = db.CreateCommand($"SELECT count(*) FROM vector_points WHERE \"Id\" = '{id}'"))
        {
            Assert.Equal(0L, await count.ExecuteScalarAsync());
        }

        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync($"/agent/memories/{id}?user=erin")).StatusCode);
        Assert.Equal(1, _qdrant.PointCount(collection));
        Assert.Contains(_qdrant.Calls, call => call == ("qdrant.Points/Delete", "qdrant-secret"));

        // Qdrant down: the memory API answers 503, and a chat's recall goes on without memories.
        _qdrant.FailWith = Grpc.Core.StatusCode.Unavailable;
        using var down = await client.PostAsJsonAsync("/agent/memories", new { content = "The user likes hiking." });
        var recalled = await api.Services.GetRequiredService<LongTermMemory>()
            .RecallAsync(Guid.NewGuid(), null, "sailing on the lake", null, default);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, down.StatusCode);
        Assert.Contains("qdrant", (await down.JsonAsync())["detail"]!.GetValue<string>());
        Assert.Empty(recalled);
    }
}
