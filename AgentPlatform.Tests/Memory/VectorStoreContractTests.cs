using AgentPlatform.Engine.Memory;
using AgentPlatform.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.VectorData;
using Npgsql;
using Qdrant.Client;

namespace AgentPlatform.Tests.Memory;

/// <summary>
/// The contract of <see cref="IVectorStore"/>, run against both implementations: the embedded store on the fixture's
/// real Postgres, and the Qdrant store against the Qdrant gRPC double.
/// </summary>
public abstract class VectorStoreContract
{
    private const int Dimensions = 4;
    private static readonly string[] Tenants = ["key_id", "user"];
    private static readonly DateTimeOffset T0 = new(2026, 11, 20, 8, 30, 0, 123, TimeSpan.Zero);

    /// <summary>A new store object over the same data (a restart of the process, as far as the store is concerned).</summary>
    protected abstract IVectorStore NewStore();

    /// <summary>A store whose server cannot be reached.</summary>
    protected abstract IVectorStore UnreachableStore();

    private static string NewCollection() => "contract_" + Guid.NewGuid().ToString("N")[..12];

    private static VectorCollection Collection(string name) => new(name, Dimensions, Tenants);

    private static VectorRecord Point(Guid id, float[] vector, string key, string? user = null, string? text = null, DateTimeOffset? at = null)
    {
        var payload = new Dictionary<string, string> { ["key_id"] = key };
        if (user is not null) payload["user"] = user;
        if (text is not null) payload["text"] = text;
        return new VectorRecord(id, vector, payload, at ?? T0);
    }

    private static Dictionary<string, string> Where(string key, string? user = null) =>
        user is null ? new() { ["key_id"] = key } : new() { ["key_id"] = key, ["user"] = user };

    private static readonly Dictionary<string, string> Everything = [];

    [Fact]
    public async Task A_collection_is_created_on_its_first_write_and_reads_before_find_nothing()
    {
        var store = NewStore();
        var name = NewCollection();
        var id = Guid.NewGuid();

        Assert.DoesNotContain(name, await store.ListCollectionsAsync(default));
        Assert.Empty(await store.SearchAsync(name, new float[] { 1, 0, 0, 0 }, 5, null, Everything, default));
        Assert.Empty(await store.ListAsync(name, Everything, 5, default));
        Assert.Null(await store.GetAsync(name, id, Everything, default));
        Assert.Equal(0, await store.CountAsync(name, Everything, default));
        Assert.False(await store.DeleteAsync(name, id, Everything, default));
        await store.DeleteAsync(name, Everything, default);

        await store.UpsertAsync(Collection(name), [Point(id, [1, 0, 0, 0], "k1", text: "first")], default);

        Assert.Contains(name, await store.ListCollectionsAsync(default));
        Assert.Equal(1, await store.CountAsync(name, Everything, default));
        var stored = await store.GetAsync(name, id, Everything, default);
        Assert.Equal("first", stored!.Payload["text"]);
        Assert.Equal("k1", stored.Payload["key_id"]);
        Assert.Equal(T0, stored.CreatedAt);
    }

    [Fact]
    public async Task An_upsert_with_a_known_id_replaces_the_point()
    {
        var store = NewStore();
        var name = NewCollection();
        var id = Guid.NewGuid();
        await store.UpsertAsync(Collection(name), [Point(id, [1, 0, 0, 0], "k1", text: "old")], default);

        await store.UpsertAsync(Collection(name), [Point(id, [0, 0, 1, 0], "k1", text: "new", at: T0.AddMinutes(1))], default);

        Assert.Equal(1, await store.CountAsync(name, Everything, default));
        var stored = await store.GetAsync(name, id, Everything, default);
        Assert.Equal("new", stored!.Payload["text"]);
        Assert.Equal(T0.AddMinutes(1), stored.CreatedAt);
        var best = Assert.Single(await store.SearchAsync(name, new float[] { 0, 0, 1, 0 }, 1, null, Everything, default));
        Assert.Equal(id, best.Record.Id);
        Assert.Equal(1.0, best.Score!.Value, 4);
    }

    [Fact]
    public async Task Search_ranks_by_cosine_similarity_and_reports_it_as_the_score()
    {
        var store = NewStore();
        var name = NewCollection();
        Guid same = Guid.NewGuid(), longer = Guid.NewGuid(), diagonal = Guid.NewGuid(), orthogonal = Guid.NewGuid(), opposite = Guid.NewGuid();
        await store.UpsertAsync(Collection(name),
        [
            Point(orthogonal, [0, 1, 0, 0], "k"),
            Point(opposite, [-3, 0, 0, 0], "k"),
            Point(diagonal, [1, 1, 0, 0], "k"),
            Point(longer, [5, 0, 0, 0.5f], "k"),
            Point(same, [1, 0, 0, 0], "k"),
        ], default);

        var results = await store.SearchAsync(name, new float[] { 2, 0, 0, 0 }, 10, null, Everything, default);

        Assert.Equal(new[] { same, longer, diagonal, orthogonal, opposite }, results.Select(r => r.Record.Id).ToArray());
        Assert.Equal(1.0, results[0].Score!.Value, 4); // the query is twice as long: length does not count, only direction
        Assert.Equal(5 / Math.Sqrt(25.25), results[1].Score!.Value, 4);
        Assert.Equal(Math.Sqrt(0.5), results[2].Score!.Value, 4);
        Assert.Equal(0.0, results[3].Score!.Value, 4);
        Assert.Equal(-1.0, results[4].Score!.Value, 4);
        Assert.Equal(2, (await store.SearchAsync(name, new float[] { 2, 0, 0, 0 }, 2, null, Everything, default)).Count);
    }

    [Fact]
    public async Task A_minimum_score_drops_weaker_matches()
    {
        var store = NewStore();
        var name = NewCollection();
        Guid close = Guid.NewGuid(), diagonal = Guid.NewGuid(), far = Guid.NewGuid();
        await store.UpsertAsync(Collection(name),
            [Point(close, [1, 0.1f, 0, 0], "k"), Point(diagonal, [1, 1, 0, 0], "k"), Point(far, [0, 0, 1, 0], "k")], default);

        var strict = await store.SearchAsync(name, new float[] { 1, 0, 0, 0 }, 10, 0.9, Everything, default);
        var loose = await store.SearchAsync(name, new float[] { 1, 0, 0, 0 }, 10, 0.5, Everything, default);

        Assert.Equal(new[] { close }, strict.Select(r => r.Record.Id).ToArray());
        Assert.Equal(new[] { close, diagonal }, loose.Select(r => r.Record.Id).ToArray());
    }

    [Fact]
    public async Task Filters_keep_tenants_and_their_users_apart_in_every_read()
    {
        var store = NewStore();
        var name = NewCollection();
        Guid aliceOfK1 = Guid.NewGuid(), bobOfK1 = Guid.NewGuid(), keyOfK1 = Guid.NewGuid(), aliceOfK2 = Guid.NewGuid();
        await store.UpsertAsync(Collection(name),
        [
            Point(aliceOfK1, [1, 0, 0, 0], "k1", "alice"),
            Point(bobOfK1, [1, 0, 0, 0], "k1", "bob"),
            Point(keyOfK1, [1, 0, 0, 0], "k1"),
            // The best match of all, but another tenant's: it must never come back for k1.
            Point(aliceOfK2, [1, 0, 0, 0], "k2", "alice"),
        ], default);
        float[] query = [1, 0, 0, 0];

        Assert.Equal(new[] { aliceOfK1, bobOfK1, keyOfK1 }.Order(), (await store.SearchAsync(name, query, 10, null, Where("k1"), default)).Select(r => r.Record.Id).Order());
        Assert.Equal(new[] { aliceOfK1 }, (await store.SearchAsync(name, query, 10, null, Where("k1", "alice"), default)).Select(r => r.Record.Id));
        Assert.Equal(new[] { aliceOfK2 }, (await store.SearchAsync(name, query, 10, null, Where("k2"), default)).Select(r => r.Record.Id));
        Assert.Empty(await store.SearchAsync(name, query, 10, null, Where("k3"), default));
        Assert.Equal(new[] { aliceOfK1 }, (await store.ListAsync(name, Where("k1", "alice"), 10, default)).Select(e => e.Id));
        Assert.Equal(3, await store.CountAsync(name, Where("k1"), default));
        Assert.Equal(1, await store.CountAsync(name, Where("k2", "alice"), default));
        Assert.Null(await store.GetAsync(name, aliceOfK2, Where("k1"), default));
        Assert.Null(await store.GetAsync(name, aliceOfK1, Where("k1", "bob"), default));
        Assert.NotNull(await store.GetAsync(name, aliceOfK2, Where("k2", "alice"), default));
    }

    [Fact]
    public async Task Delete_by_id_under_a_filter_spares_another_tenants_point()
    {
        var store = NewStore();
        var name = NewCollection();
        Guid mine = Guid.NewGuid(), theirs = Guid.NewGuid();
        await store.UpsertAsync(Collection(name), [Point(mine, [1, 0, 0, 0], "k1", "alice"), Point(theirs, [0, 1, 0, 0], "k2")], default);

        Assert.False(await store.DeleteAsync(name, theirs, Where("k1"), default));
        Assert.False(await store.DeleteAsync(name, mine, Where("k1", "bob"), default));
        Assert.NotNull(await store.GetAsync(name, theirs, Where("k2"), default));
        Assert.NotNull(await store.GetAsync(name, mine, Where("k1"), default));

        Assert.True(await store.DeleteAsync(name, mine, Where("k1", "alice"), default));
        Assert.False(await store.DeleteAsync(name, mine, Where("k1"), default));
        Assert.Null(await store.GetAsync(name, mine, Everything, default));
        Assert.Equal(1, await store.CountAsync(name, Everything, default));
    }

    [Fact]
    public async Task Delete_by_filter_removes_exactly_the_matching_points()
    {
        var store = NewStore();
        var name = NewCollection();
        await store.UpsertAsync(Collection(name),
        [
            Point(Guid.NewGuid(), [1, 0, 0, 0], "k1", "alice"), Point(Guid.NewGuid(), [0, 1, 0, 0], "k1", "alice"),
            Point(Guid.NewGuid(), [0, 0, 1, 0], "k1", "bob"), Point(Guid.NewGuid(), [0, 0, 0, 1], "k2", "alice"),
        ], default);

        await store.DeleteAsync(name, Where("k1", "alice"), default);

        Assert.Equal(0, await store.CountAsync(name, Where("k1", "alice"), default));
        Assert.Equal(1, await store.CountAsync(name, Where("k1", "bob"), default));
        Assert.Equal(1, await store.CountAsync(name, Where("k2", "alice"), default));
    }

    [Fact]
    public async Task A_listing_returns_the_newest_points_first()
    {
        var store = NewStore();
        var name = NewCollection();
        Guid first = Guid.NewGuid(), second = Guid.NewGuid(), third = Guid.NewGuid();
        await store.UpsertAsync(Collection(name),
            [Point(second, [0, 1, 0, 0], "k", at: T0.AddSeconds(1)), Point(third, [0, 0, 1, 0], "k", at: T0.AddSeconds(2)), Point(first, [1, 0, 0, 0], "k", at: T0)],
            default);

        Assert.Equal(new[] { third, second, first }, (await store.ListAsync(name, Where("k"), 10, default)).Select(e => e.Id));
        Assert.Equal(new[] { third, second }, (await store.ListAsync(name, Where("k"), 2, default)).Select(e => e.Id));
    }

    [Fact]
    public async Task A_vector_of_another_dimension_is_refused_even_by_a_new_store_instance()
    {
        var store = NewStore();
        var name = NewCollection();
        await store.UpsertAsync(Collection(name), [Point(Guid.NewGuid(), [1, 0, 0, 0], "k")], default);

        await Assert.ThrowsAsync<ArgumentException>(() => store.UpsertAsync(Collection(name), [Point(Guid.NewGuid(), [1, 0, 0], "k")], default));
        await Assert.ThrowsAsync<ArgumentException>(() => store.SearchAsync(name, new float[] { 1, 0, 0 }, 3, null, Everything, default));
        // The collection was made for 4 dimensions; a writer that declares 3 for it is refused too.
        var restarted = NewStore();
        await Assert.ThrowsAsync<ArgumentException>(() =>
            restarted.UpsertAsync(new VectorCollection(name, 3, Tenants), [Point(Guid.NewGuid(), [1, 0, 0], "k")], default));
        await Assert.ThrowsAsync<ArgumentException>(() => restarted.SearchAsync(name, new float[] { 1, 0, 0, 0, 0 }, 3, null, Everything, default));
        Assert.Equal(1, await restarted.CountAsync(name, Everything, default));
    }

    [Fact]
    public async Task A_new_store_instance_finds_what_an_earlier_one_stored()
    {
        var name = NewCollection();
        var id = Guid.NewGuid();
        await NewStore().UpsertAsync(Collection(name), [Point(id, [0, 0, 1, 1], "k", "alice", "Ünïcode ✓ \"quoted\"")], default);

        var restarted = NewStore();
        var found = Assert.Single(await restarted.SearchAsync(name, new float[] { 0, 0, 1, 1 }, 5, 0.99, Where("k", "alice"), default));

        Assert.Equal(id, found.Record.Id);
        Assert.Equal("Ünïcode ✓ \"quoted\"", found.Record.Payload["text"]);
        Assert.Equal(T0, found.Record.CreatedAt);
        Assert.Contains(name, await restarted.ListCollectionsAsync(default));
    }

    [Fact]
    public async Task Bad_names_and_vectors_are_refused_before_anything_is_sent()
    {
        var store = NewStore();
        var name = NewCollection();

        await Assert.ThrowsAsync<ArgumentException>(() => store.UpsertAsync(Collection("bad name/with slash"), [Point(Guid.NewGuid(), [1, 0, 0, 0], "k")], default));
        await Assert.ThrowsAsync<ArgumentException>(() => store.UpsertAsync(Collection(name), [Point(Guid.NewGuid(), [float.NaN, 0, 0, 0], "k")], default));
        await Assert.ThrowsAsync<ArgumentException>(() => store.CountAsync(name, new Dictionary<string, string> { ["_created_at"] = "1" }, default));
        var id = Guid.NewGuid();
        await Assert.ThrowsAsync<ArgumentException>(() => store.UpsertAsync(Collection(name), [Point(id, [1, 0, 0, 0], "k"), Point(id, [0, 1, 0, 0], "k")], default));
        Assert.DoesNotContain(name, await store.ListCollectionsAsync(default));
    }

    [Fact]
    public async Task An_unreachable_store_is_a_vector_store_exception()
    {
        var store = UnreachableStore();

        await Assert.ThrowsAsync<VectorStoreException>(() => store.ListCollectionsAsync(default));
        await Assert.ThrowsAsync<VectorStoreException>(() =>
            store.UpsertAsync(Collection(NewCollection()), [Point(Guid.NewGuid(), [1, 0, 0, 0], "k")], default));
    }
}

/// <summary>The embedded store on the platform fixture's Postgres (migrated by its Api).</summary>
[Collection(PlatformCollection.Name)]
public sealed class PostgresVectorStoreTests(PlatformFixture platform) : VectorStoreContract
{
    // Each instance its own data source: nothing is shared with an earlier instance but the database.
    protected override IVectorStore NewStore() =>
        new PostgresVectorStore(NpgsqlDataSource.Create(platform.DatabaseConnectionString), TimeProvider.System);

    protected override IVectorStore UnreachableStore() =>
        new PostgresVectorStore(NpgsqlDataSource.Create($"Host=127.0.0.1;Port={Processes.FreePort()};Username=postgres;Database=x;Timeout=2"),
            TimeProvider.System);
}

public sealed class QdrantDoubleFixture : IAsyncLifetime
{
    public QdrantDouble Qdrant { get; private set; } = null!;

    public async Task InitializeAsync() => Qdrant = await QdrantDouble.StartAsync();

    public async Task DisposeAsync() => await Qdrant.DisposeAsync();
}

/// <summary>The Qdrant store through Qdrant.Client against the Qdrant gRPC double.</summary>
public sealed class QdrantVectorStoreTests(QdrantDoubleFixture fixture) : VectorStoreContract, IClassFixture<QdrantDoubleFixture>
{
    protected override IVectorStore NewStore() =>
        new QdrantVectorStore(new QdrantClient(new Uri($"http://127.0.0.1:{fixture.Qdrant.Port}"), "contract-key"), NullLogger<QdrantVectorStore>.Instance);

    protected override IVectorStore UnreachableStore() =>
        new QdrantVectorStore(new QdrantClient(new Uri($"http://127.0.0.1:{Processes.FreePort()}"), grpcTimeout: TimeSpan.FromSeconds(2)),
            NullLogger<QdrantVectorStore>.Instance);

    [Fact]
    public async Task A_new_collection_gets_cosine_tenant_indexes_and_a_range_index_for_listings()
    {
        var name = "indexes_" + Guid.NewGuid().ToString("N")[..12];

        await NewStore().UpsertAsync(new VectorCollection(name, 4, ["key_id", "user"]),
            [new VectorRecord(Guid.NewGuid(), new float[] { 1, 2, 3, 4 }, new Dictionary<string, string> { ["key_id"] = "k" }, DateTimeOffset.UtcNow)], default);

        var indexes = fixture.Qdrant.IndexesOf(name);
        Assert.Equal(Qdrant.Client.Grpc.PayloadSchemaType.Keyword, indexes["key_id"]);
        Assert.Equal(Qdrant.Client.Grpc.PayloadSchemaType.Keyword, indexes["user"]);
        Assert.Equal(Qdrant.Client.Grpc.PayloadSchemaType.Integer, indexes[QdrantVectorStore.CreatedAtField]);
        Assert.Contains(fixture.Qdrant.Calls, c => c is ("qdrant.Collections/Create", "contract-key"));
        Assert.Contains(fixture.Qdrant.Calls, c => c is ("qdrant.Points/Upsert", "contract-key"));
    }

    [Fact]
    public async Task A_failing_qdrant_is_a_vector_store_exception_naming_the_operation()
    {
        var store = NewStore();
        var name = "failing_" + Guid.NewGuid().ToString("N")[..12];
        await store.UpsertAsync(new VectorCollection(name, 4, ["key_id"]),
            [new VectorRecord(Guid.NewGuid(), new float[] { 1, 0, 0, 0 }, new Dictionary<string, string> { ["key_id"] = "k" }, DateTimeOffset.UtcNow)], default);
        fixture.Qdrant.FailWith = Grpc.Core.StatusCode.Unavailable;
        try
        {
            var error = await Assert.ThrowsAsync<VectorStoreException>(() =>
                store.SearchAsync(name, new float[] { 1, 0, 0, 0 }, 3, null, new Dictionary<string, string> { ["key_id"] = "k" }, default));
            Assert.Equal("Query", error.OperationName);
            Assert.Equal(name, error.CollectionName);
        }
        finally
        {
            fixture.Qdrant.FailWith = null;
        }
    }
}
