using AgentPlatform.Tests.Infrastructure;
using Microsoft.Extensions.Options;

namespace AgentPlatform.Tests.Operations;

[Collection(PlatformCollection.Name)]
public sealed class ConfigurationTests(PlatformFixture platform)
{
    [Theory]
    [InlineData("PromptInjection__Patterns__0", "(unclosed", "PromptInjection:Patterns:0")]
    [InlineData("Auth__AdminKey", "short", "Auth:AdminKey")]
    [InlineData("Agents__DefaultAgent", "nobody", "Agents:DefaultAgent")]
    [InlineData("Agents__Definitions__general__Models__0__Provider", "nowhere", "Agents:Definitions:general:models[0].provider")]
    [InlineData("Router__EmaAlpha", "7", "EmaAlpha")]
    [InlineData("Tools__Mcp__Servers__broken__Arguments__0", "x", "Tools:Mcp:Servers:broken needs either Command")]
    [InlineData("Tools__Mcp__Servers__broken__Url", "not a url", "Tools:Mcp:Servers:broken:Url")]
    [InlineData("Tools__CallTimeout", "00:00:00", "Tools:CallTimeout")]
    public void A_bad_setting_stops_the_api_with_a_message_naming_it(string key, string value, string named)
    {
        var settings = platform.Settings();
        settings[key] = value;
        using var api = new ApiFactory(settings);

        var error = Assert.ThrowsAny<Exception>(() => api.CreateClient());

        var validation = error as OptionsValidationException ?? error.InnerException as OptionsValidationException
            ?? (error as AggregateException)?.InnerExceptions.OfType<OptionsValidationException>().FirstOrDefault();
        Assert.NotNull(validation);
        Assert.Contains(named, validation.Message);
    }

    [Fact]
    public void A_missing_connection_string_names_the_environment_variable()
    {
        var settings = platform.Settings();
        settings["ConnectionStrings__redis"] = "";
        using var api = new ApiFactory(settings);

        var error = Assert.ThrowsAny<InvalidOperationException>(() => api.CreateClient());

        Assert.Contains("ConnectionStrings__redis", error.Message);
    }
}
