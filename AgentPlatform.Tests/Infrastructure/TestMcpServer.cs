namespace AgentPlatform.Tests.Infrastructure;

/// <summary>The test MCP server (AgentPlatform.Tests.McpServer: tools echo, sleep, fail), built next to these tests.</summary>
public static class TestMcpServer
{
    /// <summary>The server name in configuration, and so the prefix of its tools.</summary>
    public const string Name = "testmcp";

    public static string DllPath => Path.Combine(Processes.RepoRoot(), "AgentPlatform.Tests.McpServer", "bin",
        Processes.BuildConfiguration(), "net10.0", "AgentPlatform.Tests.McpServer.dll");
}
