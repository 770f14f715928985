using AgentPlatform.Engine.Tools;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.Hosting;

public static class ToolsExtensions
{
    /// <summary>The tool catalog (built-ins and MCP servers' tools) and the background connections to the MCP servers.</summary>
    public static IHostApplicationBuilder AddAgentTools(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<ToolOptions>().Bind(builder.Configuration.GetSection(ToolOptions.SectionName)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<ToolOptions>, ToolOptionsValidator>();

        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<ToolCatalog>();
        services.AddSingleton<IToolCatalog>(sp => sp.GetRequiredService<ToolCatalog>());
        services.AddHostedService<McpToolSource>();
        return builder;
    }
}
