using System.Collections.Concurrent;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.VectorData;
using Qdrant.Client;
using Qdrant.Client.Grpc;

namespace AgentPlatform.Engine.Memory;

/// <summary>
/// The vector store on Qdrant, through <see cref="QdrantClient"/> (gRPC, <c>ConnectionStrings__qdrant</c>). A collection is
/// created on its first write (cosine, the vector dimension) with keyword indexes on its tenant fields (marked
/// <c>is_tenant</c>, so Qdrant keeps each tenant's points together) and an integer index on the creation time, which
/// listings order by. Every filter is a Qdrant <see cref="Filter"/> sent with the query.
/// </summary>
public sealed class QdrantVectorStore(QdrantClient client, ILogger<QdrantVectorStore> logger) : IVectorStore
{
    /// <summary>The creation time (Unix milliseconds) in the payload; payload fields of callers never start with "_".</summary>
    public const string CreatedAtField = "_created_at";

    private readonly ConcurrentDictionary<string, int> _dimensions = new(StringComparer.Ordinal);

    public string Name => "qdrant";

    public Task<IReadOnlyList<string>> ListCollectionsAsync(CancellationToken cancellationToken) =>
        RunAsync("ListCollections", null, () => client.ListCollectionsAsync(cancellationToken), cancellationToken);

    public async Task UpsertAsync(VectorCollection collection, IReadOnlyList<VectorRecord> records, CancellationToken cancellationToken)
    {
        VectorStoreRules.CheckCollection(collection);
        VectorStoreRules.CheckRecords(collection, records);
        var dimensions = await EnsureCollectionAsync(collection, cancellationToken);
        VectorStoreRules.CheckDimensions(collection.Name, dimensions, collection.Dimensions);
        if (records.Count == 0) return;

        var points = records.Select(record =>
        {
            var point = new PointStruct { Id = record.Id, Vectors = record.Vector.ToArray() };
            foreach (var (field, value) in record.Payload) point.Payload[field] = value;
            point.Payload[CreatedAtField] = record.CreatedAt.ToUnixTimeMilliseconds();
            return point;
        }).ToList();
        await RunAsync("Upsert", collection.Name, () => client.UpsertAsync(collection.Name, points, wait: true, cancellationToken: cancellationToken),
            cancellationToken);
    }

    public async Task<IReadOnlyList<VectorSearchResult<VectorEntry>>> SearchAsync(string collection, ReadOnlyMemory<float> vector, int top,
        double? minScore, IReadOnlyDictionary<string, string> filter, CancellationToken cancellationToken)
    {
        VectorStoreRules.CheckCollection(collection);
        VectorStoreRules.CheckFilter(filter);
        if (await DimensionsAsync(collection, cancellationToken) is not { } dimensions) return [];
        VectorStoreRules.CheckQuery(collection, dimensions, vector, top);

        var points = await RunAsync("Query", collection, () => client.QueryAsync(collection, query: vector.ToArray(), filter: ToFilter(filter),
            scoreThreshold: (float?)minScore, limit: (ulong)top, cancellationToken: cancellationToken), cancellationToken);
        return points.Select(p => new VectorSearchResult<VectorEntry>(ToEntry(p.Id, p.Payload), Math.Clamp((double)p.Score, -1, 1))).ToList();
    }

    public async Task<IReadOnlyList<VectorEntry>> ListAsync(string collection, IReadOnlyDictionary<string, string> filter, int limit,
        CancellationToken cancellationToken)
    {
        VectorStoreRules.CheckCollection(collection);
        VectorStoreRules.CheckFilter(filter);
        if (limit < 1) throw new ArgumentOutOfRangeException(nameof(limit), limit, "At least one point must be asked for.");
        if (await DimensionsAsync(collection, cancellationToken) is null) return [];

        var page = await RunAsync("Scroll", collection, () => client.ScrollAsync(collection, ToFilter(filter), (uint)limit,
            orderBy: new OrderBy { Key = CreatedAtField, Direction = Direction.Desc }, cancellationToken: cancellationToken), cancellationToken);
        return page.Result.Select(p => ToEntry(p.Id, p.Payload)).ToList();
    }

    public async Task<VectorEntry?> GetAsync(string collection, Guid id, IReadOnlyDictionary<string, string> filter, CancellationToken cancellationToken)
    {
        VectorStoreRules.CheckCollection(collection);
        VectorStoreRules.CheckFilter(filter);
        if (await DimensionsAsync(collection, cancellationToken) is null) return null;

        // Retrieve-by-id takes no filter: a scroll with the id as one more condition keeps the tenant filter inside the query.
        var page = await RunAsync("Scroll", collection, () => client.ScrollAsync(collection, ToFilter(filter, id), 1,
            cancellationToken: cancellationToken), cancellationToken);
        return page.Result.Select(p => ToEntry(p.Id, p.Payload)).SingleOrDefault();
    }

    public async Task<bool> DeleteAsync(string collection, Guid id, IReadOnlyDictionary<string, string> filter, CancellationToken cancellationToken)
    {
        VectorStoreRules.CheckCollection(collection);
        VectorStoreRules.CheckFilter(filter);
        if (await DimensionsAsync(collection, cancellationToken) is null) return false;

        // Qdrant's delete does not say how many points it removed: count first, then delete under the same filter.
        var guarded = ToFilter(filter, id);
        var found = await RunAsync("Count", collection, () => client.CountAsync(collection, guarded, exact: true, cancellationToken: cancellationToken),
            cancellationToken);
        if (found == 0) return false;
        await RunAsync("Delete", collection, () => client.DeleteAsync(collection, guarded, wait: true, cancellationToken: cancellationToken),
            cancellationToken);
        return true;
    }

    public async Task DeleteAsync(string collection, IReadOnlyDictionary<string, string> filter, CancellationToken cancellationToken)
    {
        VectorStoreRules.CheckCollection(collection);
        VectorStoreRules.CheckFilter(filter);
        if (await DimensionsAsync(collection, cancellationToken) is null) return;
        await RunAsync("Delete", collection, () => client.DeleteAsync(collection, ToFilter(filter), wait: true, cancellationToken: cancellationToken),
            cancellationToken);
    }

    public async Task<long> CountAsync(string collection, IReadOnlyDictionary<string, string> filter, CancellationToken cancellationToken)
    {
        VectorStoreRules.CheckCollection(collection);
        VectorStoreRules.CheckFilter(filter);
        if (await DimensionsAsync(collection, cancellationToken) is null) return 0;
        return (long)await RunAsync("Count", collection,
            () => client.CountAsync(collection, ToFilter(filter), exact: true, cancellationToken: cancellationToken), cancellationToken);
    }

    /// <summary>Creates the collection and its indexes when missing; returns its dimension (which may differ from the one asked for).</summary>
    private async Task<int> EnsureCollectionAsync(VectorCollection collection, CancellationToken cancellationToken)
    {
        if (_dimensions.TryGetValue(collection.Name, out var known)) return known;
        var info = await InfoAsync(collection.Name, cancellationToken);
        if (info is null)
        {
            try
            {
                await RunAsync("CreateCollection", collection.Name, async () =>
                {
                    await client.CreateCollectionAsync(collection.Name,
                        new VectorParams { Size = (ulong)collection.Dimensions, Distance = Distance.Cosine }, cancellationToken: cancellationToken);
                    return true;
                }, cancellationToken);
                logger.LogInformation("Created Qdrant collection {Collection} ({Dimensions} dimensions, cosine)", collection.Name, collection.Dimensions);
            }
            catch (VectorStoreException e) when (e.InnerException is RpcException { StatusCode: StatusCode.AlreadyExists or StatusCode.InvalidArgument })
            {
                // Another instance created it first.
            }
            info = await InfoAsync(collection.Name, cancellationToken)
                ?? throw new VectorStoreException($"The Qdrant collection '{collection.Name}' was not created.")
                {
                    VectorStoreSystemName = "qdrant", CollectionName = collection.Name, OperationName = "CreateCollection",
                };
        }

        // Indexes are checked on every first touch, not only after creating: an instance that stopped between creating the
        // collection and its indexes must not leave it without them (listings need the range index to order by).
        foreach (var field in collection.TenantFields.Where(f => !info.PayloadSchema.ContainsKey(f)))
        {
            await RunAsync("CreateFieldIndex", collection.Name, () => client.CreatePayloadIndexAsync(collection.Name, field, PayloadSchemaType.Keyword,
                new PayloadIndexParams { KeywordIndexParams = new KeywordIndexParams { IsTenant = true } }, cancellationToken: cancellationToken),
                cancellationToken);
        }
        if (!info.PayloadSchema.ContainsKey(CreatedAtField))
        {
            await RunAsync("CreateFieldIndex", collection.Name, () => client.CreatePayloadIndexAsync(collection.Name, CreatedAtField,
                PayloadSchemaType.Integer, cancellationToken: cancellationToken), cancellationToken);
        }
        return _dimensions.GetOrAdd(collection.Name, DimensionsOf(info));
    }

    /// <summary>The collection's dimension, or null when it does not exist.</summary>
    private async Task<int?> DimensionsAsync(string collection, CancellationToken cancellationToken)
    {
        if (_dimensions.TryGetValue(collection, out var known)) return known;
        if (await InfoAsync(collection, cancellationToken) is not { } info) return null;
        return _dimensions.GetOrAdd(collection, DimensionsOf(info));
    }

    // Asked whether it exists first: a Get of a missing collection is a NOT_FOUND that the client logs as an error.
    private async Task<CollectionInfo?> InfoAsync(string collection, CancellationToken cancellationToken)
    {
        if (!await RunAsync("CollectionExists", collection, () => client.CollectionExistsAsync(collection, cancellationToken), cancellationToken))
            return null;
        try
        {
            return await RunAsync("GetCollectionInfo", collection, () => client.GetCollectionInfoAsync(collection, cancellationToken), cancellationToken);
        }
        catch (VectorStoreException e) when (e.InnerException is RpcException { StatusCode: StatusCode.NotFound })
        {
            return null; // deleted in between
        }
    }

    private static int DimensionsOf(CollectionInfo info) =>
        info.Config?.Params?.VectorsConfig?.Params is { } single
            ? (int)single.Size
            : throw new VectorStoreException("The Qdrant collection has named vectors; the platform's collections have one unnamed vector.");

    private static Filter ToFilter(IReadOnlyDictionary<string, string> filter, Guid? id = null)
    {
        var result = new Filter();
        if (id is { } pointId) result.Must.Add(Conditions.HasId(pointId));
        foreach (var (field, value) in filter) result.Must.Add(Conditions.MatchKeyword(field, value));
        return result;
    }

    private static VectorEntry ToEntry(PointId id, Google.Protobuf.Collections.MapField<string, Value> payload)
    {
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        var createdAt = DateTimeOffset.UnixEpoch;
        foreach (var (field, value) in payload)
        {
            if (field == CreatedAtField) createdAt = DateTimeOffset.FromUnixTimeMilliseconds(value.IntegerValue);
            else if (value.KindCase == Value.KindOneofCase.StringValue) fields[field] = value.StringValue;
        }
        return new VectorEntry(Guid.Parse(id.Uuid), fields, createdAt);
    }

    /// <summary>Qdrant's failures (unreachable, timed out, refused) become <see cref="VectorStoreException"/>.</summary>
    private static async Task<T> RunAsync<T>(string operation, string? collection, Func<Task<T>> call, CancellationToken cancellationToken)
    {
        try
        {
            return await call();
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException(cancellationToken);
        }
        catch (RpcException e)
        {
            throw new VectorStoreException($"The vector store (Qdrant) failed in {operation}: {e.StatusCode}.", e)
            {
                VectorStoreSystemName = "qdrant",
                CollectionName = collection,
                OperationName = operation,
            };
        }
        catch (QdrantException e)
        {
            throw new VectorStoreException($"The vector store (Qdrant) failed in {operation}.", e)
            {
                VectorStoreSystemName = "qdrant",
                CollectionName = collection,
                OperationName = operation,
            };
        }
    }
}
