using System.Buffers.Binary;
using System.Collections.Concurrent;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;
using Qdrant.Client.Grpc;

namespace AgentPlatform.Tests.Infrastructure;

/// <summary>
/// The Qdrant test double: Qdrant's gRPC protocol on a real port (HTTP/2 without TLS, as Qdrant serves it on 6334),
/// answering with Qdrant.Client's own message types. No Qdrant server can run on this machine; the platform's Qdrant
/// code is tested against this, and the README says Qdrant itself was not run.
/// </summary>
/// <remarks>
/// It implements what the platform calls, with Qdrant's semantics as its documentation and protos describe them:
/// collections (exists, create, get info with payload schema, list) and points (upsert, query by nearest dense vector,
/// scroll with order_by, count, delete by ids or filter, create field index). Cosine collections keep vectors scaled to
/// length 1 and score by dot product, as Qdrant does; filters are evaluated for real (must / should / must_not, keyword
/// and integer matches, has_id, nested filters); an unknown collection is NOT_FOUND, a wrong dimension
/// INVALID_ARGUMENT, an existing collection ALREADY_EXISTS, and anything it does not implement UNIMPLEMENTED — never a
/// silent success. Qdrant.Client ships no server base classes, so the unary gRPC framing is done here by hand.
/// </remarks>
public sealed class QdrantDouble : IAsyncDisposable
{
    public const string Version = "1.15.5-double";

    private readonly WebApplication _app;
    private readonly ConcurrentQueue<(string Method, string? ApiKey)> _calls = new();
    private readonly Dictionary<string, Collection> _collections = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();
    private ulong _operationId;

    public int Port { get; }
    public string ConnectionString(string key) => $"Endpoint=http://127.0.0.1:{Port};Key={key}";
    public IReadOnlyCollection<(string Method, string? ApiKey)> Calls => _calls;

    /// <summary>When set, every call answers with this status (an outage that the platform must survive).</summary>
    public StatusCode? FailWith { get; set; }

    private sealed class Collection(ulong size, Distance distance)
    {
        public ulong Size { get; } = size;
        public Distance Distance { get; } = distance;
        public Dictionary<string, StoredPoint> Points { get; } = new(StringComparer.Ordinal);
        public Dictionary<string, PayloadSchemaType> Indexes { get; } = new(StringComparer.Ordinal);
    }

    private sealed record StoredPoint(PointId Id, float[] Vector, Dictionary<string, Value> Payload);

    private sealed class QdrantError(StatusCode status, string message) : Exception(message)
    {
        public StatusCode Status { get; } = status;
    }

    private QdrantDouble(WebApplication app, int port)
    {
        _app = app;
        Port = port;
    }

    public static async Task<QdrantDouble> StartAsync()
    {
        var port = Processes.FreePort();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.ConfigureKestrel(k => k.ListenLocalhost(port, listen => listen.Protocols = HttpProtocols.Http2));
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var qdrant = new QdrantDouble(app, port);

        app.MapPost("/qdrant.Qdrant/HealthCheck", http => qdrant.UnaryAsync(http, HealthCheckRequest.Parser,
            _ => new HealthCheckReply { Title = "qdrant - vector search engine", Version = Version }));

        var collections = "/" + Collections.Descriptor.FullName + "/";
        app.MapPost(collections + "CollectionExists", http => qdrant.UnaryAsync(http, CollectionExistsRequest.Parser, qdrant.Exists));
        app.MapPost(collections + "Create", http => qdrant.UnaryAsync(http, CreateCollection.Parser, qdrant.Create));
        app.MapPost(collections + "Get", http => qdrant.UnaryAsync(http, GetCollectionInfoRequest.Parser, qdrant.Info));
        app.MapPost(collections + "List", http => qdrant.UnaryAsync(http, ListCollectionsRequest.Parser, qdrant.List));

        var points = "/" + Points.Descriptor.FullName + "/";
        app.MapPost(points + "Upsert", http => qdrant.UnaryAsync(http, UpsertPoints.Parser, qdrant.Upsert));
        app.MapPost(points + "Query", http => qdrant.UnaryAsync(http, QueryPoints.Parser, qdrant.Query));
        app.MapPost(points + "Scroll", http => qdrant.UnaryAsync(http, ScrollPoints.Parser, qdrant.Scroll));
        app.MapPost(points + "Count", http => qdrant.UnaryAsync(http, CountPoints.Parser, qdrant.Count));
        app.MapPost(points + "Delete", http => qdrant.UnaryAsync(http, DeletePoints.Parser, qdrant.Delete));
        app.MapPost(points + "CreateFieldIndex", http => qdrant.UnaryAsync(http, CreateFieldIndexCollection.Parser, qdrant.CreateIndex));
        // Anything else the client may call is not implemented: a test that needs it fails loudly.
        app.MapPost("/{service}/{method}", (HttpContext http) => WriteStatusAsync(http, StatusCode.Unimplemented,
            $"The Qdrant double does not implement {http.Request.Path}."));

        await app.StartAsync();
        return qdrant;
    }

    /// <summary>The collections that exist, for assertions.</summary>
    public IReadOnlyList<string> CollectionNames
    {
        get { lock (_lock) return _collections.Keys.Order(StringComparer.Ordinal).ToList(); }
    }

    /// <summary>The payload indexes of a collection (field → type), for assertions.</summary>
    public IReadOnlyDictionary<string, PayloadSchemaType> IndexesOf(string collection)
    {
        lock (_lock) return new Dictionary<string, PayloadSchemaType>(_collections[collection].Indexes);
    }

    /// <summary>How many points a collection holds, for assertions.</summary>
    public int PointCount(string collection)
    {
        lock (_lock) return _collections.TryGetValue(collection, out var found) ? found.Points.Count : 0;
    }

    private IMessage Exists(CollectionExistsRequest request)
    {
        lock (_lock) return new CollectionExistsResponse { Result = new CollectionExists { Exists = _collections.ContainsKey(request.CollectionName) } };
    }

    private IMessage Create(CreateCollection request)
    {
        if (request.VectorsConfig?.ConfigCase != VectorsConfig.ConfigOneofCase.Params)
            throw new QdrantError(StatusCode.Unimplemented, "The Qdrant double supports one unnamed vector per collection.");
        var parameters = request.VectorsConfig.Params;
        if (parameters.Size == 0) throw new QdrantError(StatusCode.InvalidArgument, "Validation error in body: [vectors.size: value 0 invalid, must be 1 or larger]");
        if (parameters.Distance != Distance.Cosine)
            throw new QdrantError(StatusCode.Unimplemented, $"The Qdrant double implements cosine distance only, not {parameters.Distance}.");
        lock (_lock)
        {
            if (_collections.ContainsKey(request.CollectionName))
                throw new QdrantError(StatusCode.AlreadyExists, $"Wrong input: Collection `{request.CollectionName}` already exists!");
            _collections[request.CollectionName] = new Collection(parameters.Size, parameters.Distance);
        }
        return new CollectionOperationResponse { Result = true };
    }

    private IMessage Info(GetCollectionInfoRequest request)
    {
        lock (_lock)
        {
            var collection = Find(request.CollectionName);
            var info = new CollectionInfo
            {
                Status = CollectionStatus.Green,
                OptimizerStatus = new OptimizerStatus { Ok = true },
                SegmentsCount = 1,
                PointsCount = (ulong)collection.Points.Count,
                Config = new CollectionConfig
                {
                    Params = new CollectionParams
                    {
                        ShardNumber = 1,
                        VectorsConfig = new VectorsConfig { Params = new VectorParams { Size = collection.Size, Distance = collection.Distance } },
                    },
                },
            };
            foreach (var (field, type) in collection.Indexes)
                info.PayloadSchema[field] = new PayloadSchemaInfo { DataType = type, Points = (ulong)collection.Points.Values.Count(p => p.Payload.ContainsKey(field)) };
            return new GetCollectionInfoResponse { Result = info };
        }
    }

    private IMessage List(ListCollectionsRequest request)
    {
        lock (_lock)
        {
            var response = new ListCollectionsResponse();
            response.Collections.AddRange(_collections.Keys.Select(name => new CollectionDescription { Name = name }));
            return response;
        }
    }

    private IMessage Upsert(UpsertPoints request)
    {
        if (request.UpdateFilter is not null) throw new QdrantError(StatusCode.Unimplemented, "The Qdrant double does not implement conditional upserts.");
        lock (_lock)
        {
            var collection = Find(request.CollectionName);
            // Qdrant checks every point before it applies any.
            var points = request.Points.Select(point =>
            {
                if (point.Vectors?.VectorsOptionsCase != Vectors.VectorsOptionsOneofCase.Vector)
                    throw new QdrantError(StatusCode.Unimplemented, "The Qdrant double supports one unnamed vector per point.");
                var vector = DenseOf(point.Vectors.Vector);
                CheckDimension(collection, vector.Length);
                return new StoredPoint(point.Id, Normalized(vector), new Dictionary<string, Value>(point.Payload));
            }).ToList();
            foreach (var point in points) collection.Points[KeyOf(point.Id)] = point;
        }
        return Updated();
    }

    private IMessage Query(QueryPoints request)
    {
        if (request.Prefetch.Count > 0 || request.Query?.VariantCase != Qdrant.Client.Grpc.Query.VariantOneofCase.Nearest
            || request.Query.Nearest.VariantCase != VectorInput.VariantOneofCase.Dense || request.HasUsing)
            throw new QdrantError(StatusCode.Unimplemented, "The Qdrant double implements a query by nearest dense vector only.");
        lock (_lock)
        {
            var collection = Find(request.CollectionName);
            var query = request.Query.Nearest.Dense.Data.ToArray();
            CheckDimension(collection, query.Length);
            query = Normalized(query);
            var scored = collection.Points.Values
                .Where(p => Matches(request.Filter, p))
                .Select(p => (Point: p, Score: Dot(query, p.Vector)))
                .Where(s => !request.HasScoreThreshold || s.Score >= request.ScoreThreshold)
                .OrderByDescending(s => s.Score).ThenBy(s => KeyOf(s.Point.Id), StringComparer.Ordinal)
                .Skip((int)request.Offset)
                .Take(request.HasLimit ? (int)request.Limit : 10);
            var response = new QueryResponse();
            foreach (var (point, score) in scored)
            {
                var result = new ScoredPoint { Id = point.Id, Score = score, Version = 0 };
                if (WantsPayload(request.WithPayload)) result.Payload.Add(point.Payload);
                response.Result.Add(result);
            }
            return response;
        }
    }

    private IMessage Scroll(ScrollPoints request)
    {
        lock (_lock)
        {
            var collection = Find(request.CollectionName);
            var limit = request.HasLimit ? (int)request.Limit : 10;
            var matching = collection.Points.Values.Where(p => Matches(request.Filter, p));
            var response = new ScrollResponse();
            if (request.OrderBy is { } orderBy)
            {
                if (request.Offset is not null)
                    throw new QdrantError(StatusCode.InvalidArgument, "Wrong input: Cannot use an `offset` when using `order_by`.");
                if (!collection.Indexes.TryGetValue(orderBy.Key, out var index) || index is not (PayloadSchemaType.Integer or PayloadSchemaType.Float or PayloadSchemaType.Datetime))
                    throw new QdrantError(StatusCode.InvalidArgument,
                        $"Bad request: No range index for `order_by` key: `{orderBy.Key}`. Please create one to use `order_by`.");
                // Points without the key are left out, as in Qdrant.
                var keyed = matching.Where(p => p.Payload.TryGetValue(orderBy.Key, out var v) && v.KindCase is Value.KindOneofCase.IntegerValue or Value.KindOneofCase.DoubleValue)
                    .Select(p => (Point: p, Order: p.Payload[orderBy.Key].KindCase == Value.KindOneofCase.IntegerValue
                        ? p.Payload[orderBy.Key].IntegerValue : p.Payload[orderBy.Key].DoubleValue));
                var ordered = orderBy.Direction == Direction.Desc
                    ? keyed.OrderByDescending(k => k.Order).ThenByDescending(k => KeyOf(k.Point.Id), StringComparer.Ordinal)
                    : keyed.OrderBy(k => k.Order).ThenBy(k => KeyOf(k.Point.Id), StringComparer.Ordinal);
                foreach (var (point, _) in ordered.Take(limit)) response.Result.Add(Retrieved(point, request.WithPayload));
                return response;
            }
            // Without order_by: by id, from the offset on, with the next page's first id.
            var byId = matching.OrderBy(p => KeyOf(p.Id), StringComparer.Ordinal)
                .SkipWhile(p => request.Offset is not null && string.CompareOrdinal(KeyOf(p.Id), KeyOf(request.Offset)) < 0)
                .Take(limit + 1).ToList();
            foreach (var point in byId.Take(limit)) response.Result.Add(Retrieved(point, request.WithPayload));
            if (byId.Count > limit) response.NextPageOffset = byId[limit].Id;
            return response;
        }
    }

    private IMessage Count(CountPoints request)
    {
        lock (_lock)
        {
            var collection = Find(request.CollectionName);
            return new CountResponse { Result = new CountResult { Count = (ulong)collection.Points.Values.Count(p => Matches(request.Filter, p)) } };
        }
    }

    private IMessage Delete(DeletePoints request)
    {
        lock (_lock)
        {
            var collection = Find(request.CollectionName);
            var doomed = request.Points.PointsSelectorOneOfCase switch
            {
                PointsSelector.PointsSelectorOneOfOneofCase.Points => request.Points.Points.Ids.Select(KeyOf).ToList(),
                PointsSelector.PointsSelectorOneOfOneofCase.Filter =>
                    collection.Points.Values.Where(p => Matches(request.Points.Filter, p)).Select(p => KeyOf(p.Id)).ToList(),
                _ => throw new QdrantError(StatusCode.InvalidArgument, "Wrong input: a points selector is required."),
            };
            foreach (var key in doomed) collection.Points.Remove(key);
        }
        return Updated();
    }

    private IMessage CreateIndex(CreateFieldIndexCollection request)
    {
        var type = request.FieldType switch
        {
            FieldType.Keyword => PayloadSchemaType.Keyword,
            FieldType.Integer => PayloadSchemaType.Integer,
            FieldType.Float => PayloadSchemaType.Float,
            FieldType.Datetime => PayloadSchemaType.Datetime,
            var other => throw new QdrantError(StatusCode.Unimplemented, $"The Qdrant double does not implement {other} indexes."),
        };
        lock (_lock) Find(request.CollectionName).Indexes[request.FieldName] = type;
        return Updated();
    }

    private PointsOperationResponse Updated() =>
        new() { Result = new UpdateResult { OperationId = Interlocked.Increment(ref _operationId), Status = UpdateStatus.Completed } };

    private Collection Find(string name) =>
        _collections.TryGetValue(name, out var collection)
            ? collection
            : throw new QdrantError(StatusCode.NotFound, $"Not found: Collection `{name}` doesn't exist!");

    private static void CheckDimension(Collection collection, int length)
    {
        if ((ulong)length != collection.Size)
            throw new QdrantError(StatusCode.InvalidArgument, $"Wrong input: Vector dimension error: expected dim: {collection.Size}, got {length}");
    }

    // The deprecated "data" field is what older clients send; Qdrant.Client 1.20 sends "dense".
    private static float[] DenseOf(Vector vector) =>
        vector.Dense is { } dense ? dense.Data.ToArray()
        : throw new QdrantError(StatusCode.Unimplemented, "The Qdrant double supports dense vectors (the \"dense\" field) only.");

    private static float[] Normalized(float[] vector)
    {
        var norm = MathF.Sqrt(vector.Sum(v => v * v));
        return norm < float.Epsilon ? vector : vector.Select(v => v / norm).ToArray();
    }

    private static float Dot(float[] a, float[] b)
    {
        var sum = 0f;
        for (var i = 0; i < a.Length; i++) sum += a[i] * b[i];
        return sum;
    }

    private static string KeyOf(PointId id) => id.PointIdOptionsCase == PointId.PointIdOptionsOneofCase.Uuid
        ? Guid.Parse(id.Uuid).ToString("D")
        : id.Num.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static bool WantsPayload(WithPayloadSelector? selector) => selector?.SelectorOptionsCase switch
    {
        null or WithPayloadSelector.SelectorOptionsOneofCase.None => false,
        WithPayloadSelector.SelectorOptionsOneofCase.Enable => selector.Enable,
        _ => throw new QdrantError(StatusCode.Unimplemented, "The Qdrant double does not implement payload include/exclude selectors."),
    };

    private static RetrievedPoint Retrieved(StoredPoint point, WithPayloadSelector? selector)
    {
        var result = new RetrievedPoint { Id = point.Id };
        if (WantsPayload(selector)) result.Payload.Add(point.Payload);
        return result;
    }

    /// <summary>Qdrant's filter: every must, at least one should (when there are any), no must_not.</summary>
    private static bool Matches(Filter? filter, StoredPoint point)
    {
        if (filter is null) return true;
        if (filter.MinShould is not null) throw new QdrantError(StatusCode.Unimplemented, "The Qdrant double does not implement min_should.");
        return filter.Must.All(c => Matches(c, point))
            && (filter.Should.Count == 0 || filter.Should.Any(c => Matches(c, point)))
            && !filter.MustNot.Any(c => Matches(c, point));
    }

    private static bool Matches(Condition condition, StoredPoint point) => condition.ConditionOneOfCase switch
    {
        Condition.ConditionOneOfOneofCase.Field => Matches(condition.Field, point),
        Condition.ConditionOneOfOneofCase.HasId => condition.HasId.HasId.Any(id => KeyOf(id) == KeyOf(point.Id)),
        Condition.ConditionOneOfOneofCase.Filter => Matches(condition.Filter, point),
        var other => throw new QdrantError(StatusCode.Unimplemented, $"The Qdrant double does not evaluate {other} conditions."),
    };

    // A match on a field that holds an array matches when any element does, as in Qdrant.
    private static bool Matches(FieldCondition field, StoredPoint point)
    {
        if (field.Match is null || field.Range is not null || field.GeoBoundingBox is not null || field.GeoRadius is not null
            || field.ValuesCount is not null || field.GeoPolygon is not null || field.DatetimeRange is not null || field.HasIsEmpty || field.HasIsNull)
            throw new QdrantError(StatusCode.Unimplemented, "The Qdrant double evaluates keyword and integer matches only.");
        if (!point.Payload.TryGetValue(field.Key, out var value)) return false;
        var values = value.KindCase == Value.KindOneofCase.ListValue ? value.ListValue.Values.ToList() : [value];
        return field.Match.MatchValueCase switch
        {
            Match.MatchValueOneofCase.Keyword => values.Any(v => v.KindCase == Value.KindOneofCase.StringValue && v.StringValue == field.Match.Keyword),
            Match.MatchValueOneofCase.Integer => values.Any(v => v.KindCase == Value.KindOneofCase.IntegerValue && v.IntegerValue == field.Match.Integer),
            var other => throw new QdrantError(StatusCode.Unimplemented, $"The Qdrant double does not evaluate {other} matches."),
        };
    }

    /// <summary>One gRPC unary call: a length-prefixed request message in, a length-prefixed reply and grpc-status out.</summary>
    private async Task UnaryAsync<TRequest>(HttpContext http, MessageParser<TRequest> parser, Func<TRequest, IMessage> handle)
        where TRequest : IMessage<TRequest>
    {
        _calls.Enqueue((http.Request.Path.Value!.TrimStart('/'), http.Request.Headers["api-key"].FirstOrDefault()));
        if (FailWith is { } failure)
        {
            await WriteStatusAsync(http, failure, "The Qdrant double is failing on purpose.");
            return;
        }
        using var body = new MemoryStream();
        await http.Request.Body.CopyToAsync(body);
        var request = parser.ParseFrom(body.ToArray().AsSpan(5)); // 1 byte compressed flag, 4 bytes length
        byte[] reply;
        try
        {
            reply = handle(request).ToByteArray();
        }
        catch (QdrantError error)
        {
            await WriteStatusAsync(http, error.Status, error.Message);
            return;
        }

        http.Response.ContentType = "application/grpc";
        var frame = new byte[5 + reply.Length];
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), (uint)reply.Length);
        reply.CopyTo(frame, 5);
        await http.Response.Body.WriteAsync(frame);
        http.Response.AppendTrailer("grpc-status", "0");
    }

    /// <summary>A failed call as gRPC's "Trailers-Only" response: the status in the headers and no message.</summary>
    private static Task WriteStatusAsync(HttpContext http, StatusCode status, string message)
    {
        http.Response.ContentType = "application/grpc";
        http.Response.Headers["grpc-status"] = ((int)status).ToString(System.Globalization.CultureInfo.InvariantCulture);
        http.Response.Headers["grpc-message"] = Uri.EscapeDataString(message);
        return http.Response.CompleteAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
