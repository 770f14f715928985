using System.Net;
using System.Text;
using AgentPlatform.Engine.Webhooks;
using Microsoft.Extensions.Options;

namespace AgentPlatform.Tests.Unit;

public sealed class WebhookTargetTests
{
    private static WebhookTargets Targets(bool allowPrivate) =>
        new(new FixedMonitor(new WebhookOptions { AllowPrivateTargets = allowPrivate }));

    [Theory]
    [InlineData("127.0.0.1")] // loopback
    [InlineData("127.10.0.1")]
    [InlineData("10.1.2.3")] // private
    [InlineData("172.20.0.1")]
    [InlineData("192.168.1.1")]
    [InlineData("169.254.169.254")] // link-local: AWS, Azure and GCP metadata
    [InlineData("100.100.100.200")] // CGNAT: Alibaba metadata
    [InlineData("100.64.0.1")]
    [InlineData("0.0.0.0")]
    [InlineData("224.0.0.1")]
    [InlineData("::1")]
    [InlineData("::")]
    [InlineData("fe80::1")] // IPv6 link-local
    [InlineData("fd00:ec2::254")] // unique-local: AWS IPv6 metadata
    [InlineData("fc00::1")]
    [InlineData("::ffff:127.0.0.1")] // IPv4-mapped
    [InlineData("::ffff:169.254.169.254")]
    [InlineData("64:ff9b::a9fe:a9fe")] // NAT64 of 169.254.169.254
    [InlineData("2002:a9fe:a9fe::1")] // 6to4 of 169.254.169.254
    [InlineData("::127.0.0.1")] // IPv4-compatible
    public void Loopback_private_link_local_unique_local_cgnat_and_metadata_addresses_are_blocked(string address)
    {
        Assert.True(WebhookTargets.IsBlocked(IPAddress.Parse(address)));
        Assert.False(Targets(allowPrivate: false).Allows(IPAddress.Parse(address)));
        Assert.True(Targets(allowPrivate: true).Allows(IPAddress.Parse(address)));
    }

    [Theory]
    [InlineData("8.8.8.8")]
    [InlineData("1.1.1.1")]
    [InlineData("100.128.0.1")] // just past CGNAT
    [InlineData("172.32.0.1")] // just past 172.16/12
    [InlineData("2606:4700:4700::1111")]
    [InlineData("::ffff:8.8.8.8")]
    public void Public_addresses_are_allowed(string address) =>
        Assert.False(WebhookTargets.IsBlocked(IPAddress.Parse(address)));

    [Theory]
    [InlineData("http://localhost:8080/hook")]
    [InlineData("http://api.localhost/hook")]
    [InlineData("http://127.0.0.1/hook")]
    [InlineData("http://169.254.169.254/latest/meta-data/")]
    [InlineData("http://[::1]:9000/")]
    [InlineData("http://[fd00:ec2::254]/")]
    [InlineData("https://10.0.0.7/")]
    [InlineData("http://2130706433/")] // 127.0.0.1 written as one number
    public void A_literal_private_address_or_localhost_is_refused_at_submission(string url)
    {
        Assert.NotNull(Targets(allowPrivate: false).RefusalOf(new Uri(url)));
        Assert.Null(Targets(allowPrivate: true).RefusalOf(new Uri(url)));
    }

    [Fact]
    public void A_public_host_name_passes_submission_and_is_checked_when_delivered() =>
        Assert.Null(Targets(allowPrivate: false).RefusalOf(new Uri("https://hooks.example.com/agent")));

    [Fact]
    public async Task A_name_that_resolves_to_loopback_is_refused_after_DNS_without_connecting()
    {
        // "localhost" passes through the resolver like any name would; the connect callback sees 127.0.0.1/::1.
        using var client = new HttpClient(new SocketsHttpHandler { ConnectCallback = Targets(allowPrivate: false).ConnectAsync });

        var error = await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync("http://localhost:1/"));

        var refused = Assert.IsType<WebhookTargetRefusedException>(error.InnerException);
        Assert.Contains(refused.Addresses, IPAddress.IsLoopback);
    }

    [Fact]
    public void A_signature_verifies_only_for_the_same_secret_body_and_a_fresh_timestamp()
    {
        var secret = WebhookSignature.NewSecret();
        var body = Encoding.UTF8.GetBytes("""{"task_id":"1","status":"completed"}""");
        var now = DateTimeOffset.UtcNow;
        var timestamp = now.ToUnixTimeSeconds();
        var signature = WebhookSignature.Sign(secret, timestamp, body);

        Assert.StartsWith("v1=", signature);
        Assert.Equal(3 + 64, signature.Length);
        Assert.True(WebhookSignature.Verify(secret, timestamp.ToString(), signature, body, now));
        Assert.False(WebhookSignature.Verify(WebhookSignature.NewSecret(), timestamp.ToString(), signature, body, now));
        Assert.False(WebhookSignature.Verify(secret, timestamp.ToString(), signature, Encoding.UTF8.GetBytes("""{"task_id":"2"}"""), now));
        Assert.False(WebhookSignature.Verify(secret, timestamp.ToString(), signature, body, now.AddMinutes(6)));
        Assert.False(WebhookSignature.Verify(secret, (timestamp + 1).ToString(), signature, body, now));
    }

    private sealed class FixedMonitor(WebhookOptions value) : IOptionsMonitor<WebhookOptions>
    {
        public WebhookOptions CurrentValue => value;
        public WebhookOptions Get(string? name) => value;
        public IDisposable? OnChange(Action<WebhookOptions, string?> listener) => null;
    }
}
