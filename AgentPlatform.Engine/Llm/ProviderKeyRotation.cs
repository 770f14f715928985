using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;

namespace AgentPlatform.Engine.Llm;

/// <summary>
/// The keys of one provider, used round-robin. A key the provider answers 401 or 429 with rests for
/// <see cref="LlmOptions.KeyRestPeriod"/>; when every key rests, the one resting longest is used.
/// </summary>
public sealed class ProviderKeyPool(string[] keys, TimeSpan restPeriod, TimeProvider time)
{
    private readonly ConcurrentDictionary<string, DateTimeOffset> _restingUntil = new();
    private int _next = -1;

    public string Next()
    {
        var now = time.GetUtcNow();
        for (var i = 0; i < keys.Length; i++)
        {
            var key = keys[(int)((uint)Interlocked.Increment(ref _next) % (uint)keys.Length)];
            if (!_restingUntil.TryGetValue(key, out var until) || until <= now) return key;
        }
        return keys.OrderBy(k => _restingUntil.GetValueOrDefault(k)).First();
    }

    public void Rest(string key) => _restingUntil[key] = time.GetUtcNow() + restPeriod;
}

/// <summary>
/// Puts the pool's next key on each HTTP attempt (so a retry uses another key) and rests a key the
/// provider refused. Hand-written: the OpenAI SDK takes one fixed credential per client.
/// </summary>
public sealed class ProviderKeyRotationHandler(ProviderKeyPool pool) : DelegatingHandler
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var key = pool.Next();
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        var response = await base.SendAsync(request, cancellationToken);
        if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.TooManyRequests) pool.Rest(key);
        return response;
    }
}
