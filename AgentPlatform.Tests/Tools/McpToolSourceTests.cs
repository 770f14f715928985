using System.Diagnostics;
using AgentPlatform.Engine.Tools;
using AgentPlatform.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace AgentPlatform.Tests.Tools;

/// <summary>The MCP connections on their own catalog, without the platform.</summary>
public sealed class McpToolSourceTests
{
    [Fact]
    public async Task An_mcp_server_that_cannot_start_is_skipped_and_start_up_does_not_wait_for_servers()
    {
        var options = new ToolOptions
        {
            Mcp =
            {
                RetryInterval = TimeSpan.FromSeconds(1),
                Servers =
                {
                    ["missing"] = new McpServerOptions { Command = "/nonexistent/mcp-server" },
                    [TestMcpServer.Name] = new McpServerOptions { Command = "dotnet", Arguments = [TestMcpServer.DllPath] },
                },
            },
        };
        var catalog = new ToolCatalog(new FixedOptions<ToolOptions>(options), new ServiceCollection().BuildServiceProvider().GetRequiredService<IServiceScopeFactory>(),
            TimeProvider.System, NullLogger<ToolCatalog>.Instance);
        using var source = new McpToolSource(catalog, Options.Create(options), NullLoggerFactory.Instance, NullLogger<McpToolSource>.Instance);
        var clock = Stopwatch.StartNew();

        await source.StartAsync(CancellationToken.None);
        var startedIn = clock.Elapsed;
        await HttpExtensions.WaitUntilAsync(() => Task.FromResult(catalog.All.Any(t => t.Name == "testmcp_echo")), 60, "testmcp_echo");
        await Task.Delay(TimeSpan.FromSeconds(1.5)); // at least one retry of the missing server

        Assert.True(startedIn < TimeSpan.FromSeconds(1), $"start-up waited {startedIn}");
        Assert.Contains(catalog.All, t => t.Name == "calculator");
        Assert.DoesNotContain(catalog.All, t => t.Source == "mcp:missing");

        await source.StopAsync(CancellationToken.None);

        // Shutdown closes the connection, and the server's tools leave the catalog with it.
        Assert.DoesNotContain(catalog.All, t => t.Source == "mcp:testmcp");
    }
}

public sealed class ToolCatalogOfferTests
{
    [Fact]
    public void What_an_agent_offers_a_key_follows_the_catalog_when_a_source_changes()
    {
        var catalog = new ToolCatalog(new FixedOptions<ToolOptions>(new ToolOptions()),
            new ServiceCollection().BuildServiceProvider().GetRequiredService<IServiceScopeFactory>(), TimeProvider.System,
            NullLogger<ToolCatalog>.Instance);
        var agent = new AgentPlatform.Engine.Agents.AgentDefinition { Name = "offers", Tools = ["calculator", "ext_*"] };
        var key = new ToolCaller(Guid.NewGuid(), ["calculator", "ext_*"], IsAdmin: false);
        string[] Offered() => catalog.ToolsFor(key, agent).Select(t => t.Name).ToArray();

        Assert.Equal(["calculator"], Offered());
        Assert.Equal(["calculator"], Offered()); // remembered

        catalog.ReplaceSource("mcp:ext", [Microsoft.Extensions.AI.AIFunctionFactory.Create(() => "b", "ext_b"),
            Microsoft.Extensions.AI.AIFunctionFactory.Create(() => "a", "ext_a")]);
        Assert.Equal(["calculator", "ext_a", "ext_b"], Offered());

        catalog.RemoveSource("mcp:ext");
        Assert.Equal(["calculator"], Offered());
        // Another key's list is its own entry.
        Assert.Empty(catalog.ToolsFor(new ToolCaller(Guid.NewGuid(), [], IsAdmin: false), agent));
    }
}
