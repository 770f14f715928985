namespace AgentPlatform.Tests.Infrastructure;

public static class TestNames
{
    /// <summary>A name no other test uses (agents, models, markers, sessions): the prefix and 8 hex digits.</summary>
    public static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];
}
