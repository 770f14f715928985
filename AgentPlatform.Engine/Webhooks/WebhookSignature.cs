using System.Security.Cryptography;
using System.Text;

namespace AgentPlatform.Engine.Webhooks;

/// <summary>
/// How a webhook proves where it comes from. Each delivery carries
/// <c>X-AgentPlatform-Timestamp: &lt;unix seconds&gt;</c> and
/// <c>X-AgentPlatform-Signature: v1=&lt;hex HMAC-SHA256(secret, "&lt;timestamp&gt;.&lt;raw body&gt;")&gt;</c>,
/// the secret being the API key's <c>webhook_secret</c> (its UTF-8 bytes). A receiver recomputes the
/// HMAC over the raw body it received, compares in constant time, and rejects a timestamp more than
/// <see cref="Tolerance"/> away from its clock, so a captured delivery cannot be replayed later.
/// </summary>
public static class WebhookSignature
{
    public const string TimestampHeader = "X-AgentPlatform-Timestamp";
    public const string SignatureHeader = "X-AgentPlatform-Signature";
    public const string Version = "v1";
    public const string SecretPrefix = "whsec_";
    public static readonly TimeSpan Tolerance = TimeSpan.FromMinutes(5);

    public static string NewSecret() => SecretPrefix + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));

    public static string Sign(string secret, long timestamp, ReadOnlySpan<byte> body)
    {
        var prefix = Encoding.UTF8.GetBytes(timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture) + ".");
        var signed = new byte[prefix.Length + body.Length];
        prefix.CopyTo(signed, 0);
        body.CopyTo(signed.AsSpan(prefix.Length));
        return Version + "=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), signed));
    }

    /// <summary>What a receiver does (kept here so the documented recipe is the tested one).</summary>
    public static bool Verify(string secret, string? timestampHeader, string? signatureHeader, ReadOnlySpan<byte> body, DateTimeOffset now)
    {
        if (!long.TryParse(timestampHeader, out var timestamp) || signatureHeader is null) return false;
        if ((now - DateTimeOffset.FromUnixTimeSeconds(timestamp)).Duration() > Tolerance) return false;
        var expected = Encoding.ASCII.GetBytes(Sign(secret, timestamp, body));
        return CryptographicOperations.FixedTimeEquals(expected, Encoding.ASCII.GetBytes(signatureHeader));
    }
}
