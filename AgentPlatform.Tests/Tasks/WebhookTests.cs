using System.Net;
using System.Net.Http.Json;
using AgentPlatform.Engine.Data;
using AgentPlatform.Engine.Tasks;
using AgentPlatform.Engine.Webhooks;
using AgentPlatform.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace AgentPlatform.Tests.Tasks;

[Collection(PlatformCollection.Name)]
public sealed class WebhookTests(PlatformFixture platform)
{
    private static readonly Dictionary<string, string> Production = new() { ["Webhooks__AllowPrivateTargets"] = "false" };

    private async Task<(string Key, string WebhookSecret)> CreateKeyAsync()
    {
        var created = await (await platform.Client(PlatformFixture.AdminKey).PostAsJsonAsync("/admin/keys",
            new { name = "hooks-" + Guid.NewGuid().ToString("N")[..6], tier = "enterprise" })).JsonAsync();
        return (created["key"]!.GetValue<string>(), created["webhook_secret"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_delivery_is_signed_with_the_keys_webhook_secret_over_timestamp_and_body()
    {
        var hook = "signed-" + Guid.NewGuid().ToString("N")[..8];
        var (key, secret) = await CreateKeyAsync();
        var client = platform.Client(key);

        var taskId = (await (await client.ExecuteAsync(new { task = "sign me", async_execution = true, webhook_url = platform.Llm.WebhookUrl(hook) }))
            .JsonAsync())["task_id"]!.GetValue<string>();
        await HttpExtensions.WaitUntilAsync(() => Task.FromResult(platform.Llm.DeliveriesFor(hook).Count >= 1), what: "the webhook");

        var delivery = platform.Llm.DeliveriesFor(hook)[0];
        Assert.StartsWith("whsec_", secret);
        Assert.Equal(taskId, delivery.Body["task_id"]!.GetValue<string>());
        Assert.True(WebhookSignature.Verify(secret, delivery.Timestamp, delivery.Signature, delivery.RawBody, DateTimeOffset.UtcNow),
            $"signature {delivery.Signature} at {delivery.Timestamp}");
        Assert.False(WebhookSignature.Verify((await CreateKeyAsync()).WebhookSecret, delivery.Timestamp, delivery.Signature, delivery.RawBody,
            DateTimeOffset.UtcNow));
    }

    [Theory]
    [InlineData("http://169.254.169.254/latest/meta-data/")]
    [InlineData("http://127.0.0.1:9/hook")]
    [InlineData("http://localhost/hook")]
    [InlineData("http://[::1]/hook")]
    [InlineData("http://10.0.0.5/hook")]
    [InlineData("http://100.100.100.200/")]
    public async Task With_private_targets_not_allowed_a_private_or_metadata_webhook_url_is_a_400_naming_webhook_url(string url)
    {
        var api = ProductionApi();
        var client = PlatformFixture.ClientFor(api, (await CreateKeyAsync()).Key);

        var response = await client.ExecuteAsync(new { task = "hook me", async_execution = true, webhook_url = url });

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.NotNull((await response.JsonAsync())["errors"]!["webhook_url"]);
    }

    [Fact]
    public async Task With_private_targets_not_allowed_a_name_resolving_to_loopback_is_not_called_when_delivered()
    {
        var hook = "rebound-" + Guid.NewGuid().ToString("N")[..8];
        var client = platform.Client((await CreateKeyAsync()).Key);
        var taskId = Guid.Parse((await (await client.ExecuteAsync(new { task = "deliver me later" })).JsonAsync())["task_id"]!.GetValue<string>());
        await platform.Api.Services.GetRequiredService<TaskWriteBehind>().WhenWrittenAsync(taskId, CancellationToken.None);
        // As if a public name had been re-bound to 127.0.0.1 after the submission was accepted.
        var url = platform.Llm.WebhookUrl(hook).Replace("127.0.0.1", "localhost");
        using (var scope = platform.Api.Services.CreateScope())
            await scope.ServiceProvider.GetRequiredService<AgentDbContext>().Tasks.Where(t => t.Id == taskId)
                .ExecuteUpdateAsync(s => s.SetProperty(t => t.WebhookUrl, url));

        using (var scope = ProductionApi().Services.CreateScope())
            await scope.ServiceProvider.GetRequiredService<WebhookDeliveryJob>().DeliverAsync(taskId, CancellationToken.None);
        var refused = platform.Llm.DeliveriesFor(hook).Count;
        using (var scope = platform.Api.Services.CreateScope())
            await scope.ServiceProvider.GetRequiredService<WebhookDeliveryJob>().DeliverAsync(taskId, CancellationToken.None);

        Assert.Equal(0, refused);
        Assert.Single(platform.Llm.DeliveriesFor(hook)); // the same delivery goes out where private targets are allowed
    }

    private static ApiFactory? _production;

    private ApiFactory ProductionApi() => _production ??= platform.StartExtraApi(overrides: Production);
}
