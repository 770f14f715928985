namespace AgentPlatform.AppHost;

/// <summary>The two Qdrant connection strings the services get, and the container behind them when there is one.</summary>
public sealed record QdrantResources(
    IResourceBuilder<IResourceWithConnectionString> Grpc,
    IResourceBuilder<IResourceWithConnectionString>? Http,
    IResourceBuilder<QdrantServerResource>? Container)
{
    public const string Image = "qdrant/qdrant";
    public const string Tag = "v1.15.5";

    /// <summary>
    /// Existing Qdrant: ConnectionStrings:qdrant (gRPC) and, optionally, ConnectionStrings:qdrant_http (REST).
    /// </summary>
    public static QdrantResources FromConfiguration(IDistributedApplicationBuilder builder)
    {
        var grpc = builder.AddConnectionString("qdrant");
        // Resource names allow letters, digits and hyphens; the services read it as ConnectionStrings__qdrant_http.
        if (string.IsNullOrWhiteSpace(builder.Configuration["ConnectionStrings:qdrant_http"])) return new QdrantResources(grpc, null, null);
        var value = builder.AddParameterFromConfiguration("qdrant-http-value", "ConnectionStrings:qdrant_http", secret: true);
        var http = builder.AddConnectionString("qdrant-http", ReferenceExpression.Create($"{value.Resource}"));
        return new QdrantResources(grpc, http, null);
    }
}

/// <summary>
/// The Qdrant container; its connection string is the gRPC endpoint with the API key, as Aspire.Hosting.Qdrant's
/// QdrantServerResource gives it (a resource may not share its name with a separate connection-string resource).
/// </summary>
public sealed class QdrantServerResource(string name, ParameterResource apiKey) : ContainerResource(name), IResourceWithConnectionString
{
    public ParameterResource ApiKey { get; } = apiKey;

    public ReferenceExpression ConnectionStringExpression =>
        ReferenceExpression.Create(
            $"Endpoint=http://{this.GetEndpoint("grpc").Property(EndpointProperty.Host)}:{this.GetEndpoint("grpc").Property(EndpointProperty.Port)};Key={ApiKey}");
}

public static class QdrantContainerExtensions
{
    /// <summary>
    /// Qdrant as a container resource, since Aspire.Hosting.Qdrant is not on our package mirror: REST on 6333,
    /// gRPC on 6334 (declared as TCP, so Azure Container Apps exposes it as an additional internal port), an API key,
    /// and a health check on /readyz (which Qdrant answers without the key).
    /// </summary>
    public static QdrantResources AddQdrantContainer(this IDistributedApplicationBuilder builder, string name)
    {
        var apiKey = builder.AddParameter($"{name}-key", new GenerateParameterDefault { MinLength = 32, Special = false },
            secret: true, persist: true);
        var container = builder.AddResource(new QdrantServerResource(name, apiKey.Resource))
            .WithImage(QdrantResources.Image, QdrantResources.Tag)
            .WithHttpEndpoint(targetPort: 6333, name: "http")
            // A plain TCP endpoint, though it carries gRPC (HTTP/2): Container Apps gives an app one HTTP ingress, and
            // exposes further ports as TCP ones. The connection string still says http://, which Qdrant.Client needs.
            .WithEndpoint(targetPort: 6334, name: "grpc", scheme: "tcp")
            .WithEnvironment("QDRANT__SERVICE__API_KEY", apiKey)
            .WithEnvironment("QDRANT__TELEMETRY_DISABLED", "true")
            .WithHttpHealthCheck("/readyz", endpointName: "http");
        if (builder.ExecutionContext.IsRunMode)
        {
            container.WithVolume($"agentplatform-{name}-data", "/qdrant/storage");
        }

        var httpEndpoint = container.GetEndpoint("http");
        var http = builder.AddConnectionString($"{name}-http",
            ReferenceExpression.Create($"Endpoint={httpEndpoint.Property(EndpointProperty.Url)};Key={apiKey.Resource}"));
        return new QdrantResources(container, http, container);
    }
}
