using System.Net;
using System.Net.Http.Json;
using AgentPlatform.Tests.Infrastructure;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace AgentPlatform.Tests.Memory;

/// <summary>Memory settings and an agent's memory option are checked where they enter, naming what is wrong.</summary>
[Collection(PlatformCollection.Name)]
public sealed class MemorySettingsTests(PlatformFixture platform)
{
    [Theory]
    [InlineData("Memory__RecallLimit", "0", "Memory:RecallLimit")]
    [InlineData("Memory__RecallMinScore", "1.5", "Memory:RecallMinScore")]
    [InlineData("Memory__RecallTimeout", "00:00:00", "Memory:RecallTimeout")]
    [InlineData("Memory__MaxContentLength", "0", "Memory:MaxContentLength")]
    [InlineData("Memory__MaxPerKey", "-1", "Memory:MaxPerKey")]
    [InlineData("Memory__CollectionPrefix", "Bad Prefix!", "Memory:CollectionPrefix")]
    public async Task A_bad_memory_setting_stops_start_up_with_a_message_naming_it(string key, string value, string named)
    {
        // A plain host with the memory registration, not a whole Api: a throwaway Api would leave Hangfire's process-wide
        // log provider pointing at its disposed logger factory (see PlatformFixture.StartExtraApi).
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration[key.Replace("__", ":")] = value;
        builder.AddLongTermMemory();
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains(named, error.Message);
    }

    [Fact]
    public async Task An_agent_can_turn_recall_off_and_a_null_memory_option_is_a_400_naming_it()
    {
        var admin = platform.Client(PlatformFixture.AdminKey);

        using var off = await admin.PutAsJsonAsync("/admin/agents/forgetful",
            new { description = "Never recalls", system_prompt = "Answer.", memory = new { recall = false } });
        using var broken = await admin.PutAsJsonAsync("/admin/agents/broken-memory",
            new { description = "Bad", system_prompt = "Answer.", memory = (object?)null });

        // Other tests route over every agent: this one does not stay.
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync("/admin/agents/forgetful")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, off.StatusCode);
        Assert.False((await off.JsonAsync())["definition"]!["memory"]!["recall"]!.GetValue<bool>());
        Assert.Equal(HttpStatusCode.BadRequest, broken.StatusCode);
        Assert.NotNull((await broken.JsonAsync())["errors"]!["memory"]);
    }
}
