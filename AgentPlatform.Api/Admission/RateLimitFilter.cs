using System.Globalization;
using AgentPlatform.Api.Auth;
using AgentPlatform.Engine.Admission;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace AgentPlatform.Api.Admission;

/// <summary>Marks an endpoint that runs a task: its request limit is checked with the task's admission, not by the filter.</summary>
public sealed class RunsTaskMetadata;

/// <summary>
/// Admission by the caller's tier: requests per minute, shared across replicas through Redis (<see cref="AdmissionScript"/>).
/// Every admitted response carries X-RateLimit-Limit/Remaining/Reset; a refusal is 429 with Retry-After.
/// On endpoints that run a task (<see cref="RunsTaskMetadata"/>) the check is left to the task: a sync task written behind
/// makes it in its one admission round trip with the exact cache and the token and budget reservations; one that is stored
/// first (async, a session, an Idempotency-Key) makes it before it is stored (<see cref="Apis.AgentTaskApi.SubmitAsync"/>).
/// </summary>
public sealed class RateLimitFilter(RequestRateLimiter limiter, IOptionsMonitor<TierOptions> tiers) : IEndpointFilter
{
    private const string DeferredKey = "agentplatform.request-check";

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var caller = http.User.GetCaller();
        var limit = caller.RpmLimit ?? tiers.CurrentValue.Find(caller.Tier)?.RequestsPerMinute;
        if (caller.IsAdmin || limit is null or <= 0) return await next(context);
        if (http.GetEndpoint()?.Metadata.GetMetadata<RunsTaskMetadata>() is not null)
        {
            http.Items[DeferredKey] = new RequestCheck(caller.KeyId, limit.Value);
            return await next(context);
        }

        var decision = await limiter.AcquireAsync(caller.KeyId, limit.Value);
        Apply(http, decision);
        return decision.Allowed ? await next(context) : TooMany(decision);
    }

    /// <summary>The check this request left to its task, once (null: no limit applies, or it was taken).</summary>
    public static RequestCheck? TakeDeferred(HttpContext http) =>
        http.Items.Remove(DeferredKey, out var check) ? check as RequestCheck : null;

    /// <summary>X-RateLimit-Limit/Remaining/Reset, and Retry-After on a refusal.</summary>
    public static void Apply(HttpContext http, RateLimitDecision decision)
    {
        var resetSeconds = (int)Math.Ceiling(decision.Reset.TotalSeconds);
        var headers = http.Response.Headers;
        headers["X-RateLimit-Limit"] = decision.Limit.ToString(CultureInfo.InvariantCulture);
        headers["X-RateLimit-Remaining"] = decision.Remaining.ToString(CultureInfo.InvariantCulture);
        headers["X-RateLimit-Reset"] = resetSeconds.ToString(CultureInfo.InvariantCulture);
        if (!decision.Allowed) headers.RetryAfter = Math.Max(1, resetSeconds).ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>The one answer to a request over its limit, whether the filter, a stored task or a run's admission refused it.</summary>
    public static ProblemHttpResult TooMany(RateLimitDecision decision) =>
        TypedResults.Problem(
            statusCode: StatusCodes.Status429TooManyRequests,
            title: "Rate limit exceeded",
            detail: SpendRefusal.Requests(decision).Message,
            extensions: new Dictionary<string, object?> { ["limit"] = "requests" });
}
