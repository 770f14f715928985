using System.ComponentModel;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ModelContextProtocol.Server;

var builder = Host.CreateApplicationBuilder(args);
// stdout carries the protocol: every log line goes to stderr.
builder.Logging.ClearProviders();
builder.Logging.AddConsole(options => options.LogToStandardErrorThreshold = LogLevel.Trace);
builder.Services.AddMcpServer().WithStdioServerTransport().WithTools<TestTools>();
await builder.Build().RunAsync();

[McpServerToolType]
public sealed class TestTools
{
    [McpServerTool(Name = "echo"), Description("Returns the text it is given.")]
    public static string Echo([Description("The text to return")] string text) => text;

    [McpServerTool(Name = "sleep"), Description("Waits the given number of seconds, then answers.")]
    public static async Task<string> SleepAsync([Description("Seconds to wait, 0 to 60")] double seconds, CancellationToken cancellationToken)
    {
        await Task.Delay(TimeSpan.FromSeconds(Math.Clamp(seconds, 0, 60)), cancellationToken);
        return $"slept {seconds} s";
    }

    [McpServerTool(Name = "fail"), Description("Always fails with the given message.")]
    public static string Fail([Description("The error message")] string message) => throw new McpToolFailure(message);
}

/// <summary>Thrown by a tool; the SDK turns it into an error result (isError) that carries the message.</summary>
public sealed class McpToolFailure(string message) : ModelContextProtocol.McpException(message);
