using StackExchange.Redis;

namespace AgentPlatform.Engine.Admission;

public readonly record struct RateLimitDecision(bool Allowed, int Limit, int Remaining, TimeSpan Reset);

/// <summary>
/// Per-key requests-per-minute, decided atomically in Redis so any number of Api replicas share one exact limit (the
/// request part of <see cref="AdmissionScript"/>). A run's admission checks it together with the cache and the spend
/// limits instead (<see cref="SpendGate.AdmitAsync"/>); this is for the requests that do not run a task now.
/// </summary>
public sealed class RequestRateLimiter(IConnectionMultiplexer redis)
{
    public async Task<RateLimitDecision> AcquireAsync(Guid keyId, int limit) =>
        (await AdmissionScript.EvaluateAsync(redis.GetDatabase(), new RequestCheck(keyId, limit), null)).Requests!.Value;
}
