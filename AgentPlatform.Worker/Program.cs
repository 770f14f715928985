using AgentPlatform.Engine.Data;
using AgentPlatform.Worker;

var builder = Host.CreateApplicationBuilder(args);

builder.AddServiceDefaults();
builder.AddAgentPlatformEngine();
builder.AddWorkerServices();

var host = builder.Build();

await host.Services.PrepareEngineAsync();
host.ScheduleMaintenance();

host.Run();
