using AgentPlatform.AppHost;

var builder = DistributedApplication.CreateBuilder(args);

// Each store is either an existing server (its connection string is configured: ./run.sh does that where
// no container runtime answers, and a managed service on Azure does it too) or a container Aspire runs.
var stores = StoreModes.Decide(builder);
if (stores.Problem is { } problem)
{
    // Without this, DCP would wait for a container runtime forever and the dashboard would say "Waiting".
    Console.Error.WriteLine(problem);
    return 1;
}

// Redis: rate limits, budgets, the exact cache and hot conversation memory.
// Since 13.1 Aspire serves Redis over TLS with the ASP.NET Core dev certificate when there is one, and every
// service would then have to trust that certificate. A cache on the app's private network does not need TLS.
#pragma warning disable ASPIRECERTIFICATES001 // WithoutHttpsCertificate is experimental in 13.x
IResourceBuilder<IResourceWithConnectionString> redis = stores.Redis == StoreMode.Existing
    ? builder.AddConnectionString("redis")
    : builder.AddRedis("redis").WithoutHttpsCertificate();
#pragma warning restore ASPIRECERTIFICATES001

// Postgres: API keys, agents, tasks and their status, usage, and Hangfire's job storage.
IResourceBuilder<IResourceWithConnectionString> agentDb;
if (stores.Postgres == StoreMode.Existing)
{
    agentDb = builder.AddConnectionString("agentdb");
}
else
{
    var postgres = builder.AddPostgres("postgres");
    if (builder.ExecutionContext.IsRunMode)
    {
        // The volume keeps the data across local runs (Aspire keeps the generated password in user secrets, so it
        // still matches). Not in publish mode: Postgres's initdb fails on Azure Files; see docs/aspire.md.
        postgres.WithDataVolume();
    }
    agentDb = postgres.AddDatabase("agentdb");
}

// Qdrant: semantic cache and long-term memory, optional (the services have an embedded vector store).
// Two connection strings, both "Endpoint=http://host:port;Key=<api key>": "qdrant" (gRPC, 6334, what
// Qdrant.Client uses) and "qdrant_http" (REST, 6333).
var qdrant = stores.Qdrant switch
{
    StoreMode.Existing => QdrantResources.FromConfiguration(builder),
    StoreMode.Container => builder.AddQdrantContainer("qdrant"),
    _ => null,
};

// The admin key (Auth:AdminKey) that guards /admin/*. One given to the AppHost (Auth__AdminKey, as ./run.sh does)
// is used as it is; otherwise one is generated on the first run and kept in this project's user secrets as
// Parameters:admin-key. On deploy, azd generates one and stores it as a secret.
var adminKey = builder.Configuration["Auth:AdminKey"] is { Length: > 0 } givenKey
    ? builder.AddParameter("admin-key", givenKey, secret: true)
    : builder.AddParameter("admin-key", new GenerateParameterDefault { MinLength = 32, Special = false }, secret: true, persist: true);

// The LLM, only when configured ("Endpoint=...;Key=...;Model=..."). Without it the services answer with
// their offline model, so `dotnet run` works with no key.
var openai = string.IsNullOrWhiteSpace(builder.Configuration["ConnectionStrings:openai"])
    ? null
    : builder.AddConnectionString("openai");

// The Worker runs queued tasks (Hangfire on Postgres). It has no HTTP endpoint.
WithPlatform(builder.AddProject<Projects.AgentPlatform_Worker>("worker"));

// The Api's "http" endpoint comes from its launch profile (port 8000; PORT changes it, as ./run.sh does).
var api = WithPlatform(builder.AddProject<Projects.AgentPlatform_Api>("api")
    .WithExternalHttpEndpoints()
    .WithHttpHealthCheck("/health")); // 200 when healthy or degraded, 503 when unhealthy
if (builder.Configuration["PORT"] is { Length: > 0 } port && int.TryParse(port, out var apiPort))
{
    api.WithEndpoint("http", endpoint =>
    {
        endpoint.Port = apiPort;
        // Kestrel listens on the port itself, without DCP's endpoint proxy in front: the proxy is one more process relaying
        // every request, and under load on a small machine it costs throughput (README, Performance). One Api replica per
        // port in run mode, which is what a fixed port means anyway.
        endpoint.IsProxied = false;
    });
}

builder.Build().Run();
return 0;

// What both services need: the stores, the admin key and the LLM.
IResourceBuilder<ProjectResource> WithPlatform(IResourceBuilder<ProjectResource> service)
{
    // Azure Container Apps does not honour WaitFor: the services start anyway and keep retrying until the
    // stores answer (their /health says which one is missing meanwhile).
    service.WithReference(redis).WithReference(agentDb);
    if (stores.Redis == StoreMode.Container) service.WaitFor(redis);
    if (stores.Postgres == StoreMode.Container) service.WaitFor(agentDb);
    if (qdrant is not null)
    {
        service.WithReference(qdrant.Grpc);
        if (qdrant.Http is not null) service.WithReference(qdrant.Http, connectionName: "qdrant_http");
        if (qdrant.Container is not null) service.WaitFor(qdrant.Container);
    }
    service.WithEnvironment("Auth__AdminKey", adminKey);

    if (openai is not null)
    {
        // An external endpoint: there is nothing to wait for.
        service.WithReference(openai);
    }

    if (builder.ExecutionContext.IsRunMode)
    {
        // The Worker has no launch profile to set its environment: give both services the
        // AppHost's (Development under `dotnet run`). Deployed containers keep Production.
        service.WithEnvironment("DOTNET_ENVIRONMENT", builder.Environment.EnvironmentName);
    }

    return service;
}
