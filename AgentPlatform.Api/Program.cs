using AgentPlatform.Api.Apis;
using AgentPlatform.Api.Extensions;
using AgentPlatform.Engine.Data;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddAgentPlatformEngine();
builder.AddApplicationServices();

var app = builder.Build();

await app.Services.PrepareEngineAsync();

app.UseApplicationPipeline();
app.MapDefaultEndpoints();
app.MapOperationsApi();
app.MapAdminApi();
app.MapAgentsApi();
app.MapAgentTaskApi();
app.MapToolsApi();

app.Run();

/// <summary>Entry point type, visible to WebApplicationFactory in the tests.</summary>
public partial class Program;
