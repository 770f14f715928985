using System.Text.RegularExpressions;
using Microsoft.Extensions.VectorData;

namespace AgentPlatform.Engine.Memory;

/// <summary>A point to store: its id, its vector, string payload fields, and when it was stored.</summary>
public sealed record VectorRecord(Guid Id, ReadOnlyMemory<float> Vector, IReadOnlyDictionary<string, string> Payload, DateTimeOffset CreatedAt);

/// <summary>A stored point as reads return it: without its vector, which no caller needs back.</summary>
public sealed record VectorEntry(Guid Id, IReadOnlyDictionary<string, string> Payload, DateTimeOffset CreatedAt);

/// <summary>
/// A collection as its first write creates it: cosine distance over vectors of <paramref name="Dimensions"/>, and
/// <paramref name="TenantFields"/> — the payload fields every query filters on — indexed where the store has indexes.
/// </summary>
public sealed record VectorCollection(string Name, int Dimensions, IReadOnlyList<string> TenantFields);

/// <summary>
/// The platform's vector search (long-term memory now, the semantic cache next): named collections of points
/// compared by cosine similarity, with equality filters on payload fields. Tenant isolation is such a filter, applied
/// inside every query by the store, never checked after it. Two implementations: <see cref="QdrantVectorStore"/> and
/// the embedded <see cref="PostgresVectorStore"/>; one contract test suite runs against both.
/// </summary>
/// <remarks>
/// Microsoft.Extensions.VectorData's types are used where they fit (<see cref="VectorSearchResult{TRecord}"/>,
/// <see cref="VectorStoreException"/>); filters are field → value maps, every entry must match (its
/// <c>EqualToFilterClause</c> is obsolete in favour of LINQ expressions). Its abstract <c>VectorStoreCollection</c> is
/// not implemented: its filters are LINQ expression trees over a record model, and translating those to SQL and to
/// Qdrant filters is a whole connector's work (Microsoft's Qdrant and Postgres connectors do it, and neither is
/// available here) for the two equality filters we need.
/// Reads of a collection that does not exist yet find nothing; writes create it. A vector whose length is not the
/// collection's dimension is an <see cref="ArgumentException"/>; a store that cannot be reached is a
/// <see cref="VectorStoreException"/>.
/// </remarks>
public interface IVectorStore
{
    /// <summary>"qdrant" or "postgres", for logs and /health.</summary>
    string Name { get; }

    /// <summary>Every collection's name.</summary>
    Task<IReadOnlyList<string>> ListCollectionsAsync(CancellationToken cancellationToken);

    /// <summary>Inserts or replaces points (by id), creating the collection on first use.</summary>
    Task UpsertAsync(VectorCollection collection, IReadOnlyList<VectorRecord> records, CancellationToken cancellationToken);

    /// <summary>The <paramref name="top"/> points most similar to <paramref name="vector"/> (cosine, best first) that match the filter and score at least <paramref name="minScore"/>.</summary>
    Task<IReadOnlyList<VectorSearchResult<VectorEntry>>> SearchAsync(string collection, ReadOnlyMemory<float> vector, int top, double? minScore,
        IReadOnlyDictionary<string, string> filter, CancellationToken cancellationToken);

    /// <summary>The newest points that match the filter, newest first.</summary>
    Task<IReadOnlyList<VectorEntry>> ListAsync(string collection, IReadOnlyDictionary<string, string> filter, int limit, CancellationToken cancellationToken);

    /// <summary>One point, if it exists and matches the filter.</summary>
    Task<VectorEntry?> GetAsync(string collection, Guid id, IReadOnlyDictionary<string, string> filter, CancellationToken cancellationToken);

    /// <summary>Deletes one point if it matches the filter; false when there was no such point.</summary>
    Task<bool> DeleteAsync(string collection, Guid id, IReadOnlyDictionary<string, string> filter, CancellationToken cancellationToken);

    /// <summary>Deletes every point that matches the filter.</summary>
    Task DeleteAsync(string collection, IReadOnlyDictionary<string, string> filter, CancellationToken cancellationToken);

    /// <summary>How many points match the filter.</summary>
    Task<long> CountAsync(string collection, IReadOnlyDictionary<string, string> filter, CancellationToken cancellationToken);
}

/// <summary>What both stores accept, checked the same way before anything is sent.</summary>
public static partial class VectorStoreRules
{
    // Qdrant's own rules are wider; these are the names both stores can hold as they are.
    [GeneratedRegex("^[a-zA-Z0-9_.-]{1,255}$")]
    private static partial Regex CollectionName();

    // Keys starting with "_" are the stores' own (Qdrant keeps the creation time under "_created_at").
    [GeneratedRegex("^[a-zA-Z0-9][a-zA-Z0-9_]{0,63}$")]
    private static partial Regex FieldName();

    public const int MaxDimensions = 65_536;

    public static void CheckCollection(string collection)
    {
        if (!CollectionName().IsMatch(collection))
            throw new ArgumentException($"'{collection}' is not a valid collection name (1-255 letters, digits, '_', '-', '.').", nameof(collection));
    }

    public static void CheckCollection(VectorCollection collection)
    {
        CheckCollection(collection.Name);
        if (collection.Dimensions is < 1 or > MaxDimensions)
            throw new ArgumentException($"A collection has 1 to {MaxDimensions} dimensions, not {collection.Dimensions}.", nameof(collection));
        foreach (var field in collection.TenantFields) CheckField(field);
    }

    public static void CheckRecords(VectorCollection collection, IReadOnlyList<VectorRecord> records)
    {
        if (records.Select(r => r.Id).Distinct().Count() != records.Count)
            throw new ArgumentException("Two records of one upsert have the same id.", nameof(records));
        foreach (var record in records)
        {
            CheckDimensions(collection.Name, collection.Dimensions, record.Vector.Length);
            if (!AllFinite(record.Vector.Span)) throw new ArgumentException($"The vector of {record.Id} has a NaN or infinite component.", nameof(records));
            foreach (var field in record.Payload.Keys) CheckField(field);
        }
    }

    public static void CheckFilter(IReadOnlyDictionary<string, string> filter)
    {
        foreach (var (field, value) in filter)
        {
            CheckField(field);
            ArgumentNullException.ThrowIfNull(value, nameof(filter));
        }
    }

    public static void CheckQuery(string collection, int dimensions, ReadOnlyMemory<float> vector, int top)
    {
        CheckDimensions(collection, dimensions, vector.Length);
        if (!AllFinite(vector.Span)) throw new ArgumentException("The query vector has a NaN or infinite component.", nameof(vector));
        if (top < 1) throw new ArgumentOutOfRangeException(nameof(top), top, "At least one result must be asked for.");
    }

    public static void CheckDimensions(string collection, int dimensions, int length)
    {
        if (length != dimensions)
            throw new ArgumentException($"The collection '{collection}' holds vectors of {dimensions} dimensions, not {length}.");
    }

    private static void CheckField(string field)
    {
        if (!FieldName().IsMatch(field))
            throw new ArgumentException($"'{field}' is not a valid payload field name (1-64 letters, digits or '_', not starting with '_').");
    }

    private static bool AllFinite(ReadOnlySpan<float> vector)
    {
        foreach (var value in vector) if (!float.IsFinite(value)) return false;
        return true;
    }

    /// <summary>The vector scaled to length 1 (a zero vector stays zero), so that cosine similarity is a dot product, as Qdrant stores them.</summary>
    public static float[] Normalized(ReadOnlySpan<float> vector)
    {
        var result = vector.ToArray();
        var norm = System.Numerics.Tensors.TensorPrimitives.Norm(vector);
        if (norm > 0) System.Numerics.Tensors.TensorPrimitives.Divide(result, norm, result);
        return result;
    }
}
