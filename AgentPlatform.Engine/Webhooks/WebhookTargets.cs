using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Options;

namespace AgentPlatform.Engine.Webhooks;

/// <summary>
/// Which addresses a webhook may reach. The check runs on the addresses a delivery actually connects
/// to (<see cref="ConnectAsync"/>), after DNS resolution, so a public name that resolves, or is
/// re-bound, to a private address is refused too; <see cref="RefusalOf"/> gives the early answer for
/// literal addresses at submission time.
/// </summary>
public sealed class WebhookTargets(IOptionsMonitor<WebhookOptions> options)
{
    // Loopback, private (RFC 1918), CGNAT (RFC 6598, also Alibaba's metadata 100.100.100.200), link-local
    // (169.254.169.254 is the AWS/Azure/GCP metadata service), "this network", IETF and benchmark ranges,
    // multicast and reserved; IPv6 loopback, link-local, site-local, unique-local (fd00:ec2::254 is AWS's
    // IPv6 metadata), multicast, and the translation prefixes that embed an IPv4 address are checked through it.
    private static readonly IPNetwork[] BlockedV4 =
    [
        IPNetwork.Parse("0.0.0.0/8"), IPNetwork.Parse("10.0.0.0/8"), IPNetwork.Parse("100.64.0.0/10"),
        IPNetwork.Parse("127.0.0.0/8"), IPNetwork.Parse("169.254.0.0/16"), IPNetwork.Parse("172.16.0.0/12"),
        IPNetwork.Parse("192.0.0.0/24"), IPNetwork.Parse("192.0.2.0/24"), IPNetwork.Parse("192.168.0.0/16"),
        IPNetwork.Parse("198.18.0.0/15"), IPNetwork.Parse("198.51.100.0/24"), IPNetwork.Parse("203.0.113.0/24"),
        IPNetwork.Parse("224.0.0.0/4"), IPNetwork.Parse("240.0.0.0/4"),
    ];

    private static readonly IPNetwork[] BlockedV6 =
    [
        IPNetwork.Parse("::/128"), IPNetwork.Parse("::1/128"), IPNetwork.Parse("fe80::/10"), IPNetwork.Parse("fec0::/10"),
        IPNetwork.Parse("fc00::/7"), IPNetwork.Parse("ff00::/8"), IPNetwork.Parse("2001:db8::/32"),
        // Teredo hides its IPv4 address; nobody needs it for a webhook.
        IPNetwork.Parse("2001::/32"),
    ];

    private static readonly IPNetwork Nat64 = IPNetwork.Parse("64:ff9b::/96");
    private static readonly IPNetwork SixToFour = IPNetwork.Parse("2002::/16");

    public bool AllowsPrivateTargets => options.CurrentValue.AllowPrivateTargets;

    /// <summary>True for an address no webhook may reach (whatever the setting says, this is the policy itself).</summary>
    public static bool IsBlocked(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6) return IsBlocked(address.MapToIPv4());
        if (address.AddressFamily == AddressFamily.InterNetwork) return BlockedV4.Any(n => n.Contains(address));
        if (address.AddressFamily != AddressFamily.InterNetworkV6) return true;

        var bytes = address.GetAddressBytes();
        if (Nat64.Contains(address)) return IsBlocked(new IPAddress(bytes[12..16]));
        if (SixToFour.Contains(address)) return IsBlocked(new IPAddress(bytes[2..6]));
        // ::a.b.c.d (IPv4-compatible, deprecated) still reaches a.b.c.d on some stacks.
        if (bytes[..12].All(b => b == 0)) return true;
        return BlockedV6.Any(n => n.Contains(address));
    }

    /// <summary>Whether a delivery may connect to <paramref name="address"/> under the current settings.</summary>
    public bool Allows(IPAddress address) => AllowsPrivateTargets || !IsBlocked(address);

    /// <summary>
    /// Why a submitted webhook URL is refused before any DNS lookup (a literal blocked address or a
    /// localhost name), or null. Names are checked again, on every connection, by <see cref="ConnectAsync"/>.
    /// </summary>
    public string? RefusalOf(Uri url)
    {
        if (AllowsPrivateTargets) return null;
        var host = url.IdnHost.TrimEnd('.');
        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase) || host.EndsWith(".localhost", StringComparison.OrdinalIgnoreCase))
            return "The webhook_url must not point to localhost.";
        if (IPAddress.TryParse(host.Trim('[', ']'), out var literal) && IsBlocked(literal))
            return $"The webhook_url must not point to a loopback, private, link-local or metadata address ({literal}).";
        return null;
    }

    /// <summary>
    /// The <see cref="SocketsHttpHandler.ConnectCallback"/> of webhook deliveries: resolves the host
    /// itself, checks every address, and connects only to allowed ones. Because the socket connects to
    /// exactly the address that was checked, DNS rebinding between a check and the connect is impossible.
    /// </summary>
    public async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        var host = context.DnsEndPoint.Host;
        var addresses = IPAddress.TryParse(host.Trim('[', ']'), out var literal)
            ? [literal]
            : await Dns.GetHostAddressesAsync(host, cancellationToken);
        var allowed = addresses.Where(Allows).ToArray();
        if (allowed.Length == 0) throw new WebhookTargetRefusedException(host, addresses);

        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(allowed, context.DnsEndPoint.Port, cancellationToken);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}

/// <summary>A webhook's host resolved only to addresses the platform refuses to call.</summary>
public sealed class WebhookTargetRefusedException(string host, IReadOnlyList<IPAddress> addresses)
    : Exception($"Webhook host '{host}' resolves only to blocked addresses ({string.Join(", ", addresses)}); it was not called.")
{
    public string Host { get; } = host;
    public IReadOnlyList<IPAddress> Addresses { get; } = addresses;
}
