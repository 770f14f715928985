using System.Security.Claims;
using System.Text.Json;
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
    private const string BudgetClaim = "daily_budget_usd";
    // One claim holding a JSON array per list: unlike one claim per entry, it tells "no list" from an empty list (none).
    private const string AllowedAgentsClaim = "allowed_agents";
    private const string AllowedToolsClaim = "allowed_tools";
    private const string RpmClaim = "rpm_limit";
    private const string TpmClaim = "tpm_limit";

    public static ClaimsPrincipal ForAdmin() => Principal(AdminKeyId, "admin", "enterprise", isAdmin: true, null, null, null);

    public static ClaimsPrincipal ForKey(ApiKey key) =>
        Principal(key.Id, key.Name, key.Tier, isAdmin: false, key.AllowedAgents, key.DailyBudgetUsd, key.AllowedTools, key.RpmLimit, key.TpmLimit);

    private static ClaimsPrincipal Principal(Guid id, string name, string tier, bool isAdmin, string[]? agents, decimal? budget, string[]? tools,
        int? rpm = null, int? tpm = null)
    {
        var claims = new List<Claim>
        {
            new(KeyIdClaim, id.ToString()),
            new(ClaimTypes.Name, name),
            new(TierClaim, tier),
        };
        if (isAdmin) claims.Add(new Claim(ClaimTypes.Role, AdminRole));
        if (agents is not null) claims.Add(new Claim(AllowedAgentsClaim, JsonSerializer.Serialize(agents)));
        if (budget is not null) claims.Add(new Claim(BudgetClaim, budget.Value.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        if (tools is not null) claims.Add(new Claim(AllowedToolsClaim, JsonSerializer.Serialize(tools)));
        if (rpm is not null) claims.Add(new Claim(RpmClaim, rpm.Value.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        if (tpm is not null) claims.Add(new Claim(TpmClaim, tpm.Value.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        var caller = new Caller(id, name, tier, isAdmin, agents, budget, tools, rpm, tpm);
        return new ClaimsPrincipal(new KeyIdentity(claims, caller));
    }

    /// <summary>
    /// The claims, and the caller they were made from: a request asks for its caller several times (filters, handlers), and
    /// parsing the lists back out of their claims each time cost more than the rest of the lookup. The caller's lists are the
    /// key's own arrays, so what is remembered per key list (the tools an agent offers it) is found again.
    /// </summary>
    private sealed class KeyIdentity(IEnumerable<Claim> claims, Caller caller) : ClaimsIdentity(claims, ApiKeyAuthenticationHandler.SchemeName)
    {
        public Caller Caller => caller;
    }

    public static Caller GetCaller(this ClaimsPrincipal user)
    {
        if (user.Identity is KeyIdentity key) return key.Caller;
        var agents = user.FindFirst(AllowedAgentsClaim)?.Value;
        var budget = user.FindFirst(BudgetClaim)?.Value;
        var tools = user.FindFirst(AllowedToolsClaim)?.Value;
        return new Caller(
            Guid.Parse(user.FindFirst(KeyIdClaim)!.Value),
            user.Identity?.Name ?? "",
            user.FindFirst(TierClaim)?.Value ?? "free",
            user.IsInRole(AdminRole),
            agents is null ? null : JsonSerializer.Deserialize<string[]>(agents),
            budget is null ? null : decimal.Parse(budget, System.Globalization.CultureInfo.InvariantCulture),
            tools is null ? null : JsonSerializer.Deserialize<string[]>(tools),
            user.FindFirst(RpmClaim)?.Value is { } rpm ? int.Parse(rpm, System.Globalization.CultureInfo.InvariantCulture) : null,
            user.FindFirst(TpmClaim)?.Value is { } tpm ? int.Parse(tpm, System.Globalization.CultureInfo.InvariantCulture) : null);
    }
}
