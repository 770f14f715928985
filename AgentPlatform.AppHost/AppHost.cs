using Aspire.Hosting.ApplicationModel;

var builder = DistributedApplication.CreateBuilder(args);

// Redis: rate limits, budgets, the exact cache and hot conversation memory.
// Since 13.1 Aspire serves Redis over TLS with the ASP.NET Core dev certificate when there is one,
// and every service would then have to trust that certificate. A local cache does not need TLS.
#pragma warning disable ASPIRECERTIFICATES001 // WithoutHttpsCertificate is experimental in 13.x
var redis = builder.AddRedis("redis")
    .WithoutHttpsCertificate();
#pragma warning restore ASPIRECERTIFICATES001

// Postgres: API keys, agents, tasks and their status, usage, and Hangfire's job storage.
// The volume keeps the data across runs. Aspire keeps the generated password in this project's
// user secrets, so the password still matches the volume on the next run.
var agentDb = builder.AddPostgres("postgres")
    .WithDataVolume()
    .AddDatabase("agentdb");

// Qdrant: semantic cache and long-term memory. WithReference(qdrant) injects two connection
// strings, both "Endpoint=http://host:port;Key=<api key>":
//   ConnectionStrings__qdrant       the gRPC endpoint (6334), for Qdrant.Client
//   ConnectionStrings__qdrant_http  the REST endpoint (6333), the one our services use
var qdrant = builder.AddQdrant("qdrant");

// The admin key (Auth:AdminKey) that guards /admin/*. Generated on the first run and saved in this
// project's user secrets as Parameters:admin-key, so nobody has to set it and it stays the same
// across runs. Set that secret to choose your own. On deploy, azd generates one.
var adminKey = builder.AddParameter("admin-key",
    new GenerateParameterDefault { MinLength = 32, Special = false },
    secret: true,
    persist: true);

// The LLM, only when configured. Without it the services answer with their offline model, so
// `dotnet run` works with no key. Value: "Endpoint=...;Key=...;Model=...".
var openai = string.IsNullOrWhiteSpace(builder.Configuration["ConnectionStrings:openai"])
    ? null
    : builder.AddConnectionString("openai");

// The Worker runs queued tasks (Hangfire on Postgres). It has no HTTP endpoint.
WithPlatform(builder.AddProject<Projects.AgentPlatform_Worker>("worker"));

// The Api's "http" endpoint comes from the "http" profile of its launchSettings.json (port 8000,
// randomized in the AppHost tests); Aspire passes the port to Kestrel through ASPNETCORE_URLS.
WithPlatform(builder.AddProject<Projects.AgentPlatform_Api>("api")
    .WithExternalHttpEndpoints()
    .WithHttpHealthCheck("/health")); // 200 when healthy or degraded, 503 when unhealthy

builder.Build().Run();

// What both services need: the stores (started and healthy first), the admin key and the LLM.
IResourceBuilder<ProjectResource> WithPlatform(IResourceBuilder<ProjectResource> service)
{
    service
        .WithReference(redis).WaitFor(redis)
        .WithReference(agentDb).WaitFor(agentDb)
        .WithReference(qdrant).WaitFor(qdrant)
        .WithEnvironment("Auth__AdminKey", adminKey);

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
