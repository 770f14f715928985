using System.Text.Json;
using AgentPlatform.Engine.Llm;
using Polly.Timeout;

namespace AgentPlatform.Tests.Unit;

public sealed class ProviderFailureTests
{
    [Fact]
    public void A_failure_is_described_by_its_kind_never_by_the_providers_own_text()
    {
        const string leak = "upstream 10.0.3.7 said: key sk-live-123 invalid for prompt 'my secret plan'";

        Assert.Equal("The provider could not be reached (connection failed).",
            ProviderFailures.Describe(new HttpRequestException(HttpRequestError.ConnectionError, leak)));
        Assert.Equal("The provider could not be reached.", ProviderFailures.Describe(new HttpRequestException(leak)));
        Assert.Equal("The provider's answer could not be read.", ProviderFailures.Describe(new JsonException(leak)));
        Assert.Equal("The provider timed out.", ProviderFailures.Describe(new TimeoutRejectedException(leak)));
        Assert.Equal("The provider call failed.", ProviderFailures.Describe(new InvalidOperationException(leak)));
    }
}
