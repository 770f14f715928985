using System.Collections.Concurrent;
using System.Text.Json;
using AgentPlatform.Engine.Infrastructure;
using Microsoft.Extensions.VectorData;
using Npgsql;
using NpgsqlTypes;

namespace AgentPlatform.Engine.Memory;

/// <summary>
/// The embedded vector store, used when no Qdrant is configured: the platform's own Postgres (tables
/// <c>vector_collections</c> and <c>vector_points</c>, see <see cref="StoredVector"/>), so it is durable and every Api and
/// Worker instance shares it. There is no pgvector here: vectors are <c>real[]</c> scaled to length 1, and a search
/// computes the dot product (= cosine) of every point that passes the filter inside Postgres, in plain SQL, and returns
/// only the top k. The filter comes first, through a GIN index on the payload, so a search scans one tenant's points,
/// not the table. The cost is linear in them: about 75 µs per 1024-dimension vector on this machine, so a tenant with
/// 10,000 points waits about 0.75 s; beyond some tens of thousands of points per tenant, configure Qdrant.
/// </summary>
/// <remarks>
/// SQL through the data source rather than EF Core: the search is SQL EF cannot express, and upserts are
/// <c>INSERT … ON CONFLICT</c>. The EF model (<see cref="StoredVector"/>) owns the schema and its migration.
/// </remarks>
public sealed class PostgresVectorStore(NpgsqlDataSource dataSource, TimeProvider time) : IVectorStore
{
    private static readonly JsonSerializerOptions Json = new();

    // Dimensions never change once a collection exists, so what was read once holds.
    private readonly ConcurrentDictionary<string, int> _dimensions = new(StringComparer.Ordinal);

    public string Name => "postgres";

    public Task<IReadOnlyList<string>> ListCollectionsAsync(CancellationToken cancellationToken) =>
        RunAsync("ListCollections", null, async () =>
        {
            await using var command = dataSource.CreateCommand("""SELECT "Name" FROM vector_collections ORDER BY "Name" """);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            var names = new List<string>();
            while (await reader.ReadAsync(cancellationToken)) names.Add(reader.GetString(0));
            return (IReadOnlyList<string>)names;
        });

    public async Task UpsertAsync(VectorCollection collection, IReadOnlyList<VectorRecord> records, CancellationToken cancellationToken)
    {
        VectorStoreRules.CheckCollection(collection);
        VectorStoreRules.CheckRecords(collection, records);
        var dimensions = await EnsureCollectionAsync(collection, cancellationToken);
        VectorStoreRules.CheckDimensions(collection.Name, dimensions, collection.Dimensions);
        if (records.Count == 0) return;

        await RunAsync("Upsert", collection.Name, async () =>
        {
            await using var batch = dataSource.CreateBatch();
            foreach (var record in records)
            {
                var command = new NpgsqlBatchCommand("""
                    INSERT INTO vector_points ("Collection", "Id", "Vector", "Payload", "CreatedAt") VALUES ($1, $2, $3, $4, $5)
                    ON CONFLICT ("Collection", "Id") DO UPDATE
                    SET "Vector" = EXCLUDED."Vector", "Payload" = EXCLUDED."Payload", "CreatedAt" = EXCLUDED."CreatedAt"
                    """);
                command.Parameters.Add(new NpgsqlParameter { Value = collection.Name });
                command.Parameters.Add(new NpgsqlParameter { Value = record.Id });
                command.Parameters.Add(new NpgsqlParameter { Value = VectorStoreRules.Normalized(record.Vector.Span), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Real });
                command.Parameters.Add(new NpgsqlParameter { Value = JsonSerializer.Serialize(record.Payload, Json), NpgsqlDbType = NpgsqlDbType.Jsonb });
                command.Parameters.Add(new NpgsqlParameter { Value = record.CreatedAt.ToUniversalTime() });
                batch.BatchCommands.Add(command);
            }
            // One batch is one implicit transaction: all of the records or none.
            await batch.ExecuteNonQueryAsync(cancellationToken);
            return true;
        });
    }

    public async Task<IReadOnlyList<VectorSearchResult<VectorEntry>>> SearchAsync(string collection, ReadOnlyMemory<float> vector, int top,
        double? minScore, IReadOnlyDictionary<string, string> filter, CancellationToken cancellationToken)
    {
        VectorStoreRules.CheckCollection(collection);
        VectorStoreRules.CheckFilter(filter);
        if (await DimensionsAsync(collection, cancellationToken) is not { } dimensions) return [];
        VectorStoreRules.CheckQuery(collection, dimensions, vector, top);

        return await RunAsync("Search", collection, async () =>
        {
            // float8 sums: 1024 float4 products summed in float4 would lose the third decimal of a score.
            await using var command = dataSource.CreateCommand("""
                SELECT "Id", "Payload"::text, "CreatedAt", score FROM (
                    SELECT "Id", "Payload", "CreatedAt",
                           (SELECT sum(a::float8 * b) FROM unnest("Vector", $2) AS t(a, b)) AS score
                    FROM vector_points
                    WHERE "Collection" = $1 AND "Payload" @> $3
                ) AS scored
                WHERE $4::float8 IS NULL OR score >= $4
                ORDER BY score DESC, "Id"
                LIMIT $5
                """);
            command.Parameters.Add(new NpgsqlParameter { Value = collection });
            command.Parameters.Add(new NpgsqlParameter { Value = VectorStoreRules.Normalized(vector.Span), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Real });
            command.Parameters.Add(FilterParameter(filter));
            command.Parameters.Add(new NpgsqlParameter { Value = (object?)minScore ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Double });
            command.Parameters.Add(new NpgsqlParameter { Value = top });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            var results = new List<VectorSearchResult<VectorEntry>>();
            while (await reader.ReadAsync(cancellationToken))
            {
                // A zero vector has no direction: its dot product is 0, never NaN.
                var score = reader.IsDBNull(3) ? 0 : Math.Clamp(reader.GetDouble(3), -1, 1);
                results.Add(new VectorSearchResult<VectorEntry>(ReadEntry(reader), score));
            }
            return (IReadOnlyList<VectorSearchResult<VectorEntry>>)results;
        });
    }

    public async Task<IReadOnlyList<VectorEntry>> ListAsync(string collection, IReadOnlyDictionary<string, string> filter, int limit,
        CancellationToken cancellationToken)
    {
        VectorStoreRules.CheckCollection(collection);
        VectorStoreRules.CheckFilter(filter);
        if (limit < 1) throw new ArgumentOutOfRangeException(nameof(limit), limit, "At least one point must be asked for.");
        return await ReadAsync("List", collection, """
            SELECT "Id", "Payload"::text, "CreatedAt" FROM vector_points
            WHERE "Collection" = $1 AND "Payload" @> $2
            ORDER BY "CreatedAt" DESC, "Id" DESC
            LIMIT $3
            """, [new NpgsqlParameter { Value = collection }, FilterParameter(filter), new NpgsqlParameter { Value = limit }], cancellationToken);
    }

    public async Task<VectorEntry?> GetAsync(string collection, Guid id, IReadOnlyDictionary<string, string> filter, CancellationToken cancellationToken)
    {
        VectorStoreRules.CheckCollection(collection);
        VectorStoreRules.CheckFilter(filter);
        var entries = await ReadAsync("Get", collection, """
            SELECT "Id", "Payload"::text, "CreatedAt" FROM vector_points
            WHERE "Collection" = $1 AND "Id" = $2 AND "Payload" @> $3
            """, [new NpgsqlParameter { Value = collection }, new NpgsqlParameter { Value = id }, FilterParameter(filter)], cancellationToken);
        return entries.SingleOrDefault();
    }

    public async Task<bool> DeleteAsync(string collection, Guid id, IReadOnlyDictionary<string, string> filter, CancellationToken cancellationToken)
    {
        VectorStoreRules.CheckCollection(collection);
        VectorStoreRules.CheckFilter(filter);
        return await ExecuteAsync("Delete", collection,
            """DELETE FROM vector_points WHERE "Collection" = $1 AND "Id" = $2 AND "Payload" @> $3""",
            [new NpgsqlParameter { Value = collection }, new NpgsqlParameter { Value = id }, FilterParameter(filter)], cancellationToken) > 0;
    }

    public async Task DeleteAsync(string collection, IReadOnlyDictionary<string, string> filter, CancellationToken cancellationToken)
    {
        VectorStoreRules.CheckCollection(collection);
        VectorStoreRules.CheckFilter(filter);
        await ExecuteAsync("DeleteByFilter", collection,
            """DELETE FROM vector_points WHERE "Collection" = $1 AND "Payload" @> $2""",
            [new NpgsqlParameter { Value = collection }, FilterParameter(filter)], cancellationToken);
    }

    public Task<long> CountAsync(string collection, IReadOnlyDictionary<string, string> filter, CancellationToken cancellationToken)
    {
        VectorStoreRules.CheckCollection(collection);
        VectorStoreRules.CheckFilter(filter);
        return RunAsync("Count", collection, async () =>
        {
            await using var command = dataSource.CreateCommand("""SELECT count(*) FROM vector_points WHERE "Collection" = $1 AND "Payload" @> $2""");
            command.Parameters.Add(new NpgsqlParameter { Value = collection });
            command.Parameters.Add(FilterParameter(filter));
            return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
        });
    }

    /// <summary>Creates the collection if it is new; returns its dimension (which may differ from the one asked for).</summary>
    private async Task<int> EnsureCollectionAsync(VectorCollection collection, CancellationToken cancellationToken)
    {
        if (_dimensions.TryGetValue(collection.Name, out var known)) return known;
        var dimensions = await RunAsync("CreateCollection", collection.Name, async () =>
        {
            // Concurrent first writers: one inserts, all read the row that won.
            await using var command = dataSource.CreateCommand("""
                WITH created AS (
                    INSERT INTO vector_collections ("Name", "Dimensions", "CreatedAt") VALUES ($1, $2, $3)
                    ON CONFLICT ("Name") DO NOTHING
                    RETURNING "Dimensions")
                SELECT "Dimensions" FROM created
                UNION ALL SELECT "Dimensions" FROM vector_collections WHERE "Name" = $1
                LIMIT 1
                """);
            command.Parameters.Add(new NpgsqlParameter { Value = collection.Name });
            command.Parameters.Add(new NpgsqlParameter { Value = collection.Dimensions });
            command.Parameters.Add(new NpgsqlParameter { Value = time.GetUtcNow() });
            return (int)(await command.ExecuteScalarAsync(cancellationToken))!;
        });
        return _dimensions.GetOrAdd(collection.Name, dimensions);
    }

    private async Task<int?> DimensionsAsync(string collection, CancellationToken cancellationToken)
    {
        if (_dimensions.TryGetValue(collection, out var known)) return known;
        var dimensions = await RunAsync("GetCollection", collection, async () =>
        {
            await using var command = dataSource.CreateCommand("""SELECT "Dimensions" FROM vector_collections WHERE "Name" = $1""");
            command.Parameters.Add(new NpgsqlParameter { Value = collection });
            return (int?)await command.ExecuteScalarAsync(cancellationToken);
        });
        if (dimensions is { } found) _dimensions.TryAdd(collection, found);
        return dimensions;
    }

    private Task<IReadOnlyList<VectorEntry>> ReadAsync(string operation, string collection, string sql, NpgsqlParameter[] parameters,
        CancellationToken cancellationToken) =>
        RunAsync(operation, collection, async () =>
        {
            await using var command = dataSource.CreateCommand(sql);
            command.Parameters.AddRange(parameters);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            var entries = new List<VectorEntry>();
            while (await reader.ReadAsync(cancellationToken)) entries.Add(ReadEntry(reader));
            return (IReadOnlyList<VectorEntry>)entries;
        });

    private Task<int> ExecuteAsync(string operation, string collection, string sql, NpgsqlParameter[] parameters, CancellationToken cancellationToken) =>
        RunAsync(operation, collection, async () =>
        {
            await using var command = dataSource.CreateCommand(sql);
            command.Parameters.AddRange(parameters);
            return await command.ExecuteNonQueryAsync(cancellationToken);
        });

    private static VectorEntry ReadEntry(NpgsqlDataReader reader) => new(
        reader.GetGuid(0),
        JsonSerializer.Deserialize<Dictionary<string, string>>(reader.GetString(1), Json)!,
        reader.GetFieldValue<DateTimeOffset>(2));

    private static NpgsqlParameter FilterParameter(IReadOnlyDictionary<string, string> filter) => new()
    {
        Value = JsonSerializer.Serialize(filter, Json),
        NpgsqlDbType = NpgsqlDbType.Jsonb,
    };

    /// <summary>Postgres failures become <see cref="VectorStoreException"/>, the store-neutral "the store is unavailable".</summary>
    private async Task<T> RunAsync<T>(string operation, string? collection, Func<Task<T>> call)
    {
        try
        {
            return await call();
        }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException { InnerException: NpgsqlException })
        {
            PostgresPools.ClearAfter(e, dataSource);
            throw new VectorStoreException($"The vector store (Postgres) failed in {operation}.", e)
            {
                VectorStoreSystemName = "postgresql",
                CollectionName = collection,
                OperationName = operation,
            };
        }
    }
}
