using System.Globalization;
using AgentPlatform.Api.Auth;
using AgentPlatform.Engine.Admission;
using Microsoft.Extensions.Options;

namespace AgentPlatform.Api.Admission;

/// <summary>
/// Admission by the caller's tier: requests per minute, shared across replicas through Redis.
/// Every admitted response carries X-RateLimit-Limit/Remaining/Reset; a refusal is 429 with Retry-After.
/// </summary>
public sealed class RateLimitFilter(RequestRateLimiter limiter, IOptionsMonitor<TierOptions> tiers) : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var caller = http.User.GetCaller();
        var limit = caller.RpmLimit ?? tiers.CurrentValue.Find(caller.Tier)?.RequestsPerMinute;
        if (caller.IsAdmin || limit is null or <= 0) return await next(context);

        var decision = await limiter.AcquireAsync(caller.KeyId, limit.Value);
        var resetSeconds = (int)Math.Ceiling(decision.Reset.TotalSeconds);
        var headers = http.Response.Headers;
        headers["X-RateLimit-Limit"] = decision.Limit.ToString(CultureInfo.InvariantCulture);
        headers["X-RateLimit-Remaining"] = decision.Remaining.ToString(CultureInfo.InvariantCulture);
        headers["X-RateLimit-Reset"] = resetSeconds.ToString(CultureInfo.InvariantCulture);
        if (decision.Allowed) return await next(context);

        headers.RetryAfter = Math.Max(1, resetSeconds).ToString(CultureInfo.InvariantCulture);
        return TypedResults.Problem(
            statusCode: StatusCodes.Status429TooManyRequests,
            title: "Rate limit exceeded",
            detail: $"Tier '{caller.Tier}' allows {decision.Limit} requests per minute; retry in {Math.Max(1, resetSeconds)} s.");
    }
}
