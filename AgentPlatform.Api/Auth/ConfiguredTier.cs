using AgentPlatform.Engine.Admission;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Policy;
using Microsoft.Extensions.Options;

namespace AgentPlatform.Api.Auth;

/// <summary>
/// Part of the default policy (every endpoint that needs a key): the key's tier must be configured under
/// <c>Tiers:Limits</c>. A tier renamed or removed after its keys were made would otherwise leave those keys
/// without any limit; failing closed turns that drift into a 403 an administrator can see and fix.
/// </summary>
public sealed class ConfiguredTierRequirement : IAuthorizationRequirement;

public sealed class ConfiguredTierHandler(IOptionsMonitor<TierOptions> tiers) : AuthorizationHandler<ConfiguredTierRequirement>
{
    protected override Task HandleRequirementAsync(AuthorizationHandlerContext context, ConfiguredTierRequirement requirement)
    {
        // Without a key the policy's authenticated-user requirement answers (401).
        if (context.User.Identity?.IsAuthenticated != true) return Task.CompletedTask;
        var caller = context.User.GetCaller();
        if (caller.IsAdmin || tiers.CurrentValue.Find(caller.Tier) is not null)
        {
            context.Succeed(requirement);
            return Task.CompletedTask;
        }
        context.Fail(new UnconfiguredTierReason(this, caller.Tier));
        return Task.CompletedTask;
    }
}

public sealed class UnconfiguredTierReason(IAuthorizationHandler handler, string tier)
    : AuthorizationFailureReason(handler,
        $"This API key's tier '{tier}' is not configured (Tiers:Limits:{tier}), so the key is refused; " +
        "an administrator can configure the tier or issue a key of a configured tier.")
{
    public string Tier { get; } = tier;
}

/// <summary>Writes a refusal the authorization handlers explained (an unconfigured tier) as a problem naming it.</summary>
public sealed class ProblemAuthorizationResultHandler(IProblemDetailsService problems) : IAuthorizationMiddlewareResultHandler
{
    private readonly AuthorizationMiddlewareResultHandler _default = new();

    public async Task HandleAsync(RequestDelegate next, HttpContext context, AuthorizationPolicy policy, PolicyAuthorizationResult authorizeResult)
    {
        if (authorizeResult.Forbidden
            && authorizeResult.AuthorizationFailure?.FailureReasons.OfType<UnconfiguredTierReason>().FirstOrDefault() is { } reason)
        {
            context.Response.StatusCode = StatusCodes.Status403Forbidden;
            await problems.WriteAsync(new ProblemDetailsContext
            {
                HttpContext = context,
                ProblemDetails =
                {
                    Status = StatusCodes.Status403Forbidden,
                    Title = "Tier not configured",
                    Detail = reason.Message,
                    Extensions = { ["tier"] = reason.Tier },
                },
            });
            return;
        }
        await _default.HandleAsync(next, context, policy, authorizeResult);
    }
}
