namespace AgentPlatform.Engine.Tools;

/// <summary>
/// A tool's own, expected failure ("Division by zero.", an MCP server's error result). Its message is
/// written for the model and the task record; other exceptions are logged and reported generically.
/// </summary>
public sealed class ToolFailedException(string message) : Exception(message);
