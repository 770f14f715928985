using System.Security.Claims;
using AgentPlatform.Engine.Admission;
using AgentPlatform.Engine.Tools;

namespace AgentPlatform.Api.Auth;

/// <summary>Who is calling: the claims the key handler issues and typed access to them.</summary>
/// <param name="AllowedAgents">The key's agent allow-list; null means every agent, empty means none.</param>
/// <param name="AllowedTools">The key's tool allow-list; null means no list (see ToolAllowList), empty means none.</param>
public sealed record Caller(Guid KeyId, string Name, string Tier, bool IsAdmin, string[]? AllowedAgents, decimal? DailyBudgetUsd,
    string[]? AllowedTools = null, int? RpmLimit = null, int? TpmLimit = null)
{
    public bool MayUseAgent(string agent) =>
        IsAdmin || AllowedAgents is null || AllowedAgents.Contains(agent, StringComparer.OrdinalIgnoreCase);

    /// <summary>The caller as the tool catalog sees it.</summary>
    public ToolCaller ToToolCaller() => new(KeyId, AllowedTools, IsAdmin, Account: IsAdmin ? null : new SpendAccount(Tier, TpmLimit, DailyBudgetUsd));
}

public static class CallerIdentity
{
    public const string AdminPolicy = "admin";
    public const string AdminRole = "admin";
    /// <summary>The admin acts on tasks as this key id, with no limits.</summary>
    public static readonly Guid AdminKeyId = Guid.Empty;

    private const string KeyIdClaim = "key_id";
    private const string TierClaim = "tier";

    public static ClaimsPrincipal ForAdmin() => Principal(new Caller(AdminKeyId, "admin", "enterprise", IsAdmin: true, null, null));

    public static ClaimsPrincipal ForKey(ApiKey key) =>
        Principal(new Caller(key.Id, key.Name, key.Tier, IsAdmin: false, key.AllowedAgents, key.DailyBudgetUsd, key.AllowedTools, key.RpmLimit,
            key.TpmLimit));

    /// <summary>The claims ASP.NET Core and the logs read (key id, name, tier, admin role), carrying the caller they describe.</summary>
    private static ClaimsPrincipal Principal(Caller caller)
    {
        var claims = new List<Claim>
        {
            new(KeyIdClaim, caller.KeyId.ToString()),
            new(ClaimTypes.Name, caller.Name),
            new(TierClaim, caller.Tier),
        };
        if (caller.IsAdmin) claims.Add(new Claim(ClaimTypes.Role, AdminRole));
        return new ClaimsPrincipal(new KeyIdentity(claims, caller));
    }

    /// <summary>
    /// The claims, and the caller they were made from: a request asks for its caller several times (filters, handlers), and
    /// the caller's lists are the key's own arrays, so what is remembered per key list (the tools an agent offers it) is
    /// found again.
    /// </summary>
    private sealed class KeyIdentity(IEnumerable<Claim> claims, Caller caller) : ClaimsIdentity(claims, ApiKeyAuthenticationHandler.SchemeName)
    {
        public Caller Caller => caller;
    }

    /// <summary>The caller of a request the key handler authenticated.</summary>
    public static Caller GetCaller(this ClaimsPrincipal user) =>
        user.Identity is KeyIdentity key ? key.Caller : throw new InvalidOperationException("The request was not authenticated with an API key.");
}
