using AgentPlatform.Api.Apis;
using AgentPlatform.Api.Extensions;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddAgentPlatformEngine();
builder.AddApplicationServices();

var app = builder.Build();

app.UseApplicationPipeline();
app.MapDefaultEndpoints();
app.MapOperationsApi();
app.MapUsageApi();
app.MapAdminApi();
app.MapAgentsApi();
app.MapAgentTaskApi();
app.MapConversationsApi();
app.MapToolsApi();
app.MapOpenAiApi();
app.MapMemoriesApi();

app.Run();

/// <summary>Entry point type, visible to WebApplicationFactory in the tests.</summary>
public partial class Program;
