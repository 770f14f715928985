using System.Net;
using System.Net.Sockets;
using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;

namespace AgentPlatform.Api.Auth;

/// <summary>
/// Counts failed authentication attempts per client address (<see cref="AuthOptions.FailedAttemptsPerMinute"/>)
/// and, past the limit, refuses that address's unknown keys with 429 before they cost a hash lookup in Postgres.
/// </summary>
/// <remarks>
/// Built on System.Threading.RateLimiting's partitioned fixed window, the primitive of ASP.NET Core's rate
/// limiting middleware, but not that middleware: it counts every request that reaches an endpoint, while only
/// failures should count here, and the decision has to be made inside authentication, before the lookup.
/// Per instance, in memory: a Redis round trip for every bad key would be the very cost this avoids, and with
/// N replicas an address gets at most N times the limit. Behind a reverse proxy the client address comes from
/// X-Forwarded-For only when forwarded headers are enabled (ASPNETCORE_FORWARDEDHEADERS_ENABLED=true).
/// </remarks>
public sealed class FailedAuthenticationLimiter : IDisposable
{
    private readonly PartitionedRateLimiter<string>? _limiter;

    public FailedAuthenticationLimiter(IOptions<AuthOptions> options)
    {
        var perMinute = options.Value.FailedAttemptsPerMinute;
        if (perMinute <= 0) return; // 0 turns the limit off
        // Idle partitions (windows back to full) are dropped by the partitioned limiter itself, so memory follows
        // the number of recently failing addresses, not of all addresses ever seen.
        _limiter = PartitionedRateLimiter.Create<string, string>(address => RateLimitPartition.GetFixedWindowLimiter(address,
            _ => new FixedWindowRateLimiterOptions { PermitLimit = perMinute, Window = TimeSpan.FromMinutes(1), QueueLimit = 0 }));
    }

    /// <summary>Whether this address used up its failed attempts; <paramref name="retryAfter"/> says for how long.</summary>
    public bool IsBlocked(HttpContext context, out TimeSpan retryAfter)
    {
        retryAfter = TimeSpan.Zero;
        if (_limiter is null) return false;
        using var probe = _limiter.AttemptAcquire(AddressOf(context), 0);
        if (probe.IsAcquired) return false;
        retryAfter = probe.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? wait : TimeSpan.FromMinutes(1);
        return true;
    }

    public void RecordFailure(HttpContext context)
    {
        using var _ = _limiter?.AttemptAcquire(AddressOf(context));
    }

    /// <summary>The client address; an IPv6 client is counted by its /64, which one host can fill with addresses.</summary>
    internal static string AddressOf(HttpContext context)
    {
        var address = context.Connection.RemoteIpAddress;
        if (address is null) return "unknown";
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        if (address.AddressFamily != AddressFamily.InterNetworkV6) return address.ToString();
        var bytes = address.GetAddressBytes();
        Array.Clear(bytes, 8, 8);
        return new IPAddress(bytes) + "/64";
    }

    public void Dispose() => _limiter?.Dispose();
}
