using System.Buffers.Binary;
using System.Collections.Concurrent;
using Google.Protobuf;
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
/// code is tested against this, and the README says Qdrant itself was not run. Methods grow with what the platform
/// calls; today: <c>qdrant.Qdrant/HealthCheck</c>.
/// </summary>
public sealed class QdrantDouble : IAsyncDisposable
{
    public const string Version = "1.15.5-double";

    private readonly WebApplication _app;
    private readonly ConcurrentQueue<(string Method, string? ApiKey)> _calls = new();

    public int Port { get; }
    public string ConnectionString(string key) => $"Endpoint=http://127.0.0.1:{Port};Key={key}";
    public IReadOnlyCollection<(string Method, string? ApiKey)> Calls => _calls;

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
        await app.StartAsync();
        return qdrant;
    }

    /// <summary>One gRPC unary call: a length-prefixed request message in, a length-prefixed reply and grpc-status out.</summary>
    private async Task UnaryAsync<TRequest>(HttpContext http, MessageParser<TRequest> parser, Func<TRequest, IMessage> handle)
        where TRequest : IMessage<TRequest>
    {
        _calls.Enqueue((http.Request.Path.Value!.TrimStart('/'), http.Request.Headers["api-key"].FirstOrDefault()));
        using var body = new MemoryStream();
        await http.Request.Body.CopyToAsync(body);
        var request = parser.ParseFrom(body.ToArray().AsSpan(5)); // 1 byte compressed flag, 4 bytes length
        var reply = handle(request).ToByteArray();

        http.Response.ContentType = "application/grpc";
        var frame = new byte[5 + reply.Length];
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), (uint)reply.Length);
        reply.CopyTo(frame, 5);
        await http.Response.Body.WriteAsync(frame);
        http.Response.AppendTrailer("grpc-status", "0");
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
