using Microsoft.Extensions.Options;

namespace AgentPlatform.Tests.Tools;

/// <summary>Options that never change, for a catalog built without a host.</summary>
internal sealed class FixedOptions<T>(T value) : IOptionsMonitor<T>
{
    public T CurrentValue => value;
    public T Get(string? name) => value;
    public IDisposable? OnChange(Action<T, string?> listener) => null;
}
