using System.Text;
using System.Text.Json;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ModelContextProtocol;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;

namespace AgentPlatform.Engine.Tools;

/// <summary>
/// Keeps the configured MCP servers connected and their tools in the catalog as "{server}_{tool}".
/// Start-up never waits for a server: each connects in the background; one that fails or goes away
/// is logged, its tools leave the catalog, and it is tried again after <see cref="McpOptions.RetryInterval"/>.
/// Clients (and so stdio server processes) are disposed on shutdown.
/// </summary>
internal sealed class McpToolSource(
    ToolCatalog catalog, IOptions<ToolOptions> options, ILoggerFactory loggerFactory, ILogger<McpToolSource> logger) : BackgroundService
{
    /// <summary>The catalog source name of a server's tools.</summary>
    public static string SourceOf(string server) => "mcp:" + server;

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.WhenAll(options.Value.Mcp.Servers.Select(server => KeepConnectedAsync(server.Key, server.Value, stoppingToken)));

    private async Task KeepConnectedAsync(string server, McpServerOptions settings, CancellationToken stoppingToken)
    {
        var mcp = options.Value.Mcp;
        while (!stoppingToken.IsCancellationRequested)
        {
            McpClient? client = null;
            try
            {
                using (var connecting = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken))
                {
                    connecting.CancelAfter(mcp.ConnectTimeout);
                    client = await McpClient.CreateAsync(CreateTransport(server, settings), new McpClientOptions
                    {
                        ClientInfo = new Implementation { Name = "AgentPlatform", Version = "1.0" },
                    }, loggerFactory, connecting.Token);
                    await RefreshToolsAsync(server, client, connecting.Token);
                }

                // A server may change its tools while connected (notifications/tools/list_changed).
                var connected = client;
                await using var listChanged = connected.RegisterNotificationHandler(NotificationMethods.ToolListChangedNotification,
                    async (_, cancellationToken) => await RefreshToolsAsync(server, connected, cancellationToken));

                var completion = await connected.Completion.WaitAsync(stoppingToken);
                logger.LogWarning(completion.Exception, "MCP server {Server} disconnected; its tools are unavailable until it reconnects", server);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                logger.LogWarning(e, "MCP server {Server} could not be reached; trying again in {RetryInterval}", server, mcp.RetryInterval);
            }
            finally
            {
                catalog.RemoveSource(SourceOf(server));
                if (client is not null) await DisposeQuietlyAsync(server, client);
            }

            try
            {
                await Task.Delay(mcp.RetryInterval, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    private async Task RefreshToolsAsync(string server, McpClient client, CancellationToken cancellationToken)
    {
        var tools = await client.ListToolsAsync(cancellationToken: cancellationToken);
        var added = catalog.ReplaceSource(SourceOf(server),
            tools.Select(tool => (AIFunction)new McpTool(tool.WithName(PrefixedName(server, tool.Name)))));
        logger.LogInformation("MCP server {Server}: {Count} tools ({Tools})", server, added.Count, string.Join(", ", added));
    }

    private IClientTransport CreateTransport(string server, McpServerOptions settings)
    {
        if (!string.IsNullOrWhiteSpace(settings.Url))
        {
            return new HttpClientTransport(new HttpClientTransportOptions
            {
                Name = server,
                Endpoint = new Uri(settings.Url),
                TransportMode = HttpTransportMode.AutoDetect,
                AdditionalHeaders = settings.Headers,
            }, loggerFactory);
        }

        var stdio = new StdioClientTransportOptions
        {
            Name = server,
            Command = settings.Command!,
            Arguments = settings.Arguments,
            WorkingDirectory = settings.WorkingDirectory,
            // Not this process's environment: it holds the admin key, the provider key and connection strings.
            InheritEnvironmentVariables = false,
            StandardErrorLines = line => logger.LogDebug("MCP server {Server}: {Line}", server, line),
        };
        var environment = StdioClientTransportOptions.GetDefaultEnvironmentVariables();
        foreach (var (name, value) in settings.Environment) environment[name] = value;
        stdio.EnvironmentVariables = environment!;
        return new StdioClientTransport(stdio, loggerFactory);
    }

    /// <summary>"{server}_{tool}", reduced to what OpenAI accepts as a tool name: ^[a-zA-Z0-9_-]{1,64}$.</summary>
    public static string PrefixedName(string server, string tool)
    {
        var name = new StringBuilder(server.Length + 1 + tool.Length);
        foreach (var c in $"{server}_{tool}") name.Append(char.IsAsciiLetterOrDigit(c) || c is '_' or '-' ? c : '_');
        return name.Length <= 64 ? name.ToString() : name.ToString(0, 64);
    }

    private async Task DisposeQuietlyAsync(string server, McpClient client)
    {
        try
        {
            await client.DisposeAsync();
        }
        catch (Exception e)
        {
            logger.LogDebug(e, "Closing MCP server {Server} failed", server);
        }
    }
}

/// <summary>
/// An MCP server's tool as a plain function: text (or structured) content becomes the result and an
/// error result (isError) becomes a <see cref="ToolFailedException"/>, so the catalog reports it as
/// outcome "error" — McpClientTool alone would return either as an ordinary value.
/// </summary>
internal sealed class McpTool(McpClientTool tool) : DelegatingAIFunction(tool)
{
    protected override async ValueTask<object?> InvokeCoreAsync(AIFunctionArguments arguments, CancellationToken cancellationToken)
    {
        var result = await tool.CallAsync(arguments, cancellationToken: cancellationToken);
        var texts = result.Content.OfType<TextContentBlock>().Select(t => t.Text).ToList();
        if (result.IsError == true)
            throw new ToolFailedException(texts.Count > 0 ? string.Join("\n", texts) : $"The MCP tool '{tool.ProtocolTool.Name}' reported an error.");
        if (result.StructuredContent is not null)
            return JsonSerializer.SerializeToElement(result.StructuredContent, McpJsonUtilities.DefaultOptions);
        if (texts.Count == result.Content.Count)
            return string.Join("\n", texts);
        // Images, audio, resources: hand the model the protocol's own JSON rather than dropping them.
        return JsonSerializer.SerializeToElement(result.Content, McpJsonUtilities.DefaultOptions);
    }
}
