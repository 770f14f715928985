using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using AgentPlatform.Engine.Agents;
using AgentPlatform.Engine.Execution;
using AgentPlatform.Engine.Memory;
using AgentPlatform.Engine.Routing;
using AgentPlatform.Engine.Tasks;
using AgentPlatform.Engine.Telemetry;
using AgentPlatform.Engine.Tools;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.VectorData;
using StackExchange.Redis;

namespace AgentPlatform.Engine.Caching;

/// <summary>
/// Answers runs from earlier runs' answers, in two tiers:
/// <list type="bullet">
/// <item>exact — a Redis hash per <see cref="PromptFingerprint.Exact"/> (the answer as JSON and its hit count), expiring
/// with the agent's TTL;</item>
/// <item>semantic — a point per answer in the vector store (Qdrant or the embedded store), the new message's embedding,
/// searched within the same scope and the same <see cref="PromptFingerprint.Context"/> (payload filters inside the query)
/// above the agent's similarity threshold. The point refers to the exact entry, so it serves only while that entry lives:
/// both expire together. Its payload keeps the expiry too: an expired point found by a search is deleted then, and each
/// store deletes up to <see cref="PurgeBatch"/> expired points of its group (a Redis sorted set keeps their expiries), and
/// the points beyond <see cref="CacheOptions.SemanticMaxEntries"/>, those that expire first: the embedded store's search
/// scans a group's points, so a group must stay small.</item>
/// </list>
/// Scope: the API key by default; one scope for every key when all the run's agents say <c>cache.shared</c>. A run is
/// cacheable when every participating agent has caching on, its temperature is at most <see cref="CacheOptions.MaxTemperature"/>,
/// and it offers no tool outside <see cref="CacheOptions.CacheableTools"/>. The cache never fails a run: a Redis, embedding
/// or vector store failure is logged and the run goes on as a miss.
/// </summary>
public sealed class ResponseCache(
    IConnectionMultiplexer redis, IVectorStore vectors, RoutingEmbeddings embeddings, AgentRegistry registry, AgentClients clients,
    AgentInvoker invoker, Billing.UsageLedger ledger, IOptionsMonitor<CacheOptions> options, TimeProvider time, ILogger<ResponseCache> logger)
{
    public const string SharedScope = "shared";
    public const int PurgeBatch = 20;
    private const int SemanticCandidates = 3;
    private const int ReplayChunkLength = 64;

    private const string ScopeField = "scope";
    private const string ContextField = "context";
    private const string EntryField = "entry";
    private const string AgentsField = "agents";
    private const string ExpiresField = "expires_at";
    private static readonly string[] TenantFields = [ScopeField, ContextField];

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    // KEYS: entry. ARGV: answer, ttl ms.
    private const string WriteScript = """
        redis.call('DEL', KEYS[1])
        redis.call('HSET', KEYS[1], 'answer', ARGV[1], 'hits', 0)
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        return 1
        """;

    // KEYS: the group's points. ARGV: point id, its expiry (unix ms), now (unix ms), the set's own ttl ms, batch, most points.
    // Tracks the new point; returns (and forgets) up to a batch of the group's expired points, then the points beyond the
    // most a group keeps (those that expire first), for the caller to delete.
    private const string TrackScript = """
        redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
        redis.call('PEXPIRE', KEYS[1], ARGV[4])
        local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[3], 'LIMIT', 0, tonumber(ARGV[5]))
        if #gone > 0 then redis.call('ZREM', KEYS[1], unpack(gone)) end
        local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[6])
        if over > 0 then
          local oldest = redis.call('ZPOPMIN', KEYS[1], over)
          for i = 1, #oldest, 2 do gone[#gone + 1] = oldest[i] end
        end
        return gone
        """;

    /// <summary>
    /// Looks the run up before it starts: <see cref="Probe"/>, the exact entry read, <see cref="CompleteAsync"/>. A run's
    /// admission reads the exact entry in its own round trip instead (<see cref="Admission.SpendGate.AdmitAsync"/>).
    /// </summary>
    /// <param name="input">What the run is asked, conversation history and recalled memories included (a chat turn's prepared input).</param>
    public async Task<CacheLookup> LookupAsync(AgentTask task, RoutingDecision decision, RunInput input, ToolCaller caller,
        CancellationToken cancellationToken)
    {
        var probe = Probe(task, decision, input, caller);
        return await CompleteAsync(probe, probe.ExactKey is { } key ? await ReadAnswerAsync(key) : null, cancellationToken);
    }

    /// <summary>
    /// What a run's lookup needs, without any I/O: whether it is looked up at all (a task the client submitted with a bypass is
    /// neither looked up nor stored; a run that is not cacheable is <see cref="CacheOutcomes.Skipped"/>), and if so the exact
    /// entry's key and whether the semantic tier applies.
    /// </summary>
    public CacheProbe Probe(AgentTask task, RoutingDecision decision, RunInput input, ToolCaller caller)
    {
        try
        {
            if (task.CacheOutcome == CacheOutcomes.Bypass) return new CacheProbe(Tagged(CacheLookup.Bypassed, "the client asked for a fresh answer"));
            if (Participants(decision, input, caller, out var strategy, out var reason) is not { } participants)
                return new CacheProbe(Tagged(CacheLookup.NotCacheable, reason));

            var settings = options.CurrentValue;
            var fingerprint = PromptFingerprint.Of(strategy, participants, input);
            var scope = participants.All(p => p.Agent.Cache.Shared) ? SharedScope : task.ApiKeyId.ToString("N");
            var ttl = participants.Min(p => p.Agent.Cache.TtlSeconds is { } seconds ? TimeSpan.FromSeconds(seconds) : settings.DefaultTtl);
            var semantic = participants.All(p => p.Agent.Cache.Semantic ?? settings.Semantic)
                           && fingerprint.SemanticText is { } text && text.Length <= settings.SemanticMaxPromptLength;
            return new CacheProbe(null)
            {
                Slot = new CacheSlot(scope, fingerprint, string.Join(",", participants.Select(p => p.Agent.Name)), ttl, null),
                ExactKey = EntryKey(scope, fingerprint.Exact),
                Semantic = semantic,
                Threshold = semantic ? participants.Max(p => p.Agent.Cache.SemanticThreshold ?? settings.SemanticThreshold) : 1,
            };
        }
        catch (Exception e)
        {
            // Whatever goes wrong in the cache is a bug to log, not a reason to fail the user's run.
            logger.LogError(e, "The response cache lookup failed unexpectedly; the run goes on without the cache");
            return new CacheProbe(Tagged(CacheLookup.NotCacheable, "the cache failed"));
        }
    }

    /// <summary>Finishes a lookup once the exact entry was read: its answer, else the semantic tier, else a miss.</summary>
    /// <param name="exactAnswer">The exact entry's answer (JSON) as read, null when there is none.</param>
    public async Task<CacheLookup> CompleteAsync(CacheProbe probe, string? exactAnswer, CancellationToken cancellationToken)
    {
        if (probe.Decided is { } decided) return decided;
        var slot = probe.Slot!;
        try
        {
            using var activity = PlatformTelemetry.ActivitySource.StartActivity("cache.lookup");
            activity?.SetTag("cache.scope", slot.Scope == SharedScope ? SharedScope : "key");
            if (exactAnswer is not null) return Hit(CacheOutcomes.Exact, JsonSerializer.Deserialize<CachedAnswer>(exactAnswer, Json)!, null, activity);

            SemanticPoint? point = null;
            if (probe.Semantic)
            {
                (point, var similar, var score) = await SemanticLookupAsync(slot.Scope, slot.Fingerprint, probe.Threshold, cancellationToken);
                if (similar is not null) return Hit(CacheOutcomes.Semantic, similar, score, activity);
            }

            PlatformTelemetry.CacheMisses.Add(1, new KeyValuePair<string, object?>("agent", slot.Agents));
            activity?.SetTag("cache.outcome", CacheOutcomes.Miss);
            Activity.Current?.SetTag("cache.outcome", CacheOutcomes.Miss);
            return new CacheLookup(CacheOutcomes.Miss) { Slot = slot with { Semantic = point } };
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            logger.LogError(e, "The response cache lookup failed unexpectedly; the run goes on without the cache");
            return Tagged(CacheLookup.NotCacheable, "the cache failed");
        }
    }

    /// <summary>
    /// The run a hit stands for: the cached answer replayed to a streaming client (in a few chunks) and to
    /// <see cref="RunInput.OnResponse"/>, at no cost and no tokens (a conversation's preparation, if any, keeps its cost).
    /// </summary>
    public async Task<ExecutionResult> ServeAsync(CacheLookup lookup, RunInput input, CancellationToken cancellationToken)
    {
        var hit = lookup.Hit ?? throw new InvalidOperationException("Only a hit can be served.");
        if (input.OnUpdate is { } stream)
        {
            foreach (var chunk in Chunks(hit.Text))
                await stream(new ChatResponseUpdate(ChatRole.Assistant, chunk) { ModelId = hit.Model }, cancellationToken);
        }
        var response = new ChatResponse(new ChatMessage(ChatRole.Assistant, hit.Text)) { ModelId = hit.Model, FinishReason = ChatFinishReason.Stop };
        input.OnResponse?.Invoke(response);
        var run = new AgentRun(hit.Agent, "cached", null, hit.Model, hit.Text, "stop", 0, 0, 0m, 0, null, []) { Response = response };
        ledger.RecordCacheHit(lookup.Outcome, hit.Agent, hit.Model ?? ""); // a row for the answer served, at cost 0
        return new ExecutionResult(hit.Strategy, run, [.. input.Preparation, run]);
    }

    /// <summary>Keeps a miss's answer when the run completed with an acceptable one (text, and the model stopped on its own).</summary>
    public async Task StoreAsync(CacheLookup lookup, ExecutionResult result, RunInput input)
    {
        try
        {
            await StoreCoreAsync(lookup, result, input);
        }
        catch (Exception e)
        {
            logger.LogError(e, "Storing an answer in the response cache failed unexpectedly; the task is completed regardless");
        }
    }

    private async Task StoreCoreAsync(CacheLookup lookup, ExecutionResult result, RunInput input)
    {
        if (lookup is not { Outcome: CacheOutcomes.Miss, Slot: { } slot } || result.Winner is not { Acceptable: true } winner) return;
        var settings = options.CurrentValue;
        if (winner.Text!.Length > settings.MaxAnswerLength) return;

        // What the answer cost when it was produced (every run of the task but a conversation's preparation): what a hit saves.
        var runs = result.Runs.Skip(input.Preparation.Count).ToList();
        var now = time.GetUtcNow();
        var answer = new CachedAnswer(winner.Agent, winner.Model, result.Strategy, winner.Text, runs.Sum(r => r.CostUsd),
            runs.Sum(r => r.PromptTokens), runs.Sum(r => r.CompletionTokens), now);
        var database = redis.GetDatabase();
        try
        {
            await database.ScriptEvaluateAsync(WriteScript, [EntryKey(slot.Scope, slot.Fingerprint.Exact)],
                [JsonSerializer.Serialize(answer, Json), (long)slot.Ttl.TotalMilliseconds]);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            logger.LogWarning("Could not store the answer in the response cache ({Reason}); the next identical request asks the model again", e.Message);
            return;
        }

        if (slot.Semantic is not { } point) return;
        var filter = Filter(slot.Scope, slot.Fingerprint.Context);
        var expires = now + slot.Ttl;
        var id = PointId(slot.Scope, slot.Fingerprint.Exact);
        var payload = new Dictionary<string, string>(filter)
        {
            [EntryField] = slot.Fingerprint.Exact,
            [AgentsField] = slot.Agents,
            [ExpiresField] = expires.ToUnixTimeMilliseconds().ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        try
        {
            await vectors.UpsertAsync(point.Collection, [new VectorRecord(id, point.Vector, payload, now)], CancellationToken.None);
            var expired = (RedisResult[])(await database.ScriptEvaluateAsync(TrackScript,
                [(RedisKey)$"cache:points:{point.Collection.Name}:{slot.Scope}:{slot.Fingerprint.Context}"],
                [id.ToString("D"), expires.ToUnixTimeMilliseconds(), now.ToUnixTimeMilliseconds(),
                    (long)(slot.Ttl + TimeSpan.FromDays(1)).TotalMilliseconds, PurgeBatch, settings.SemanticMaxEntries]))!;
            foreach (var gone in expired)
                if (Guid.TryParse((string?)gone, out var stale)) await vectors.DeleteAsync(point.Collection.Name, stale, filter, CancellationToken.None);
        }
        catch (Exception e) when (e is VectorStoreException or RedisException or TimeoutException)
        {
            logger.LogWarning("Could not store the answer in the semantic cache ({Reason}); only identical prompts will be served from it", e.Message);
        }
    }

    /// <summary>The run's agents when it is cacheable, with the options each would send; else null and why not.</summary>
    private List<CacheParticipant>? Participants(RoutingDecision decision, RunInput input, ToolCaller caller, out string strategy, out string reason)
    {
        var settings = options.CurrentValue;
        var agents = decision.Agents.Select(registry.Find).OfType<AgentDefinition>().ToList();
        // The same reading of the decision as TaskExecutor's: several agents only for parallel and cascade.
        strategy = decision.Strategy is Strategies.Parallel or Strategies.Cascade && agents.Count > 1 ? decision.Strategy : Strategies.Single;
        if (agents.Count == 0)
        {
            reason = "the agent no longer exists";
            return null;
        }
        if (strategy == Strategies.Single) agents = [agents[0]];
        var participants = new List<CacheParticipant>();
        foreach (var agent in agents)
        {
            if (!(agent.Cache.Enabled ?? settings.Enabled))
            {
                reason = $"caching is off for agent '{agent.Name}'";
                return null;
            }
            var chatOptions = invoker.OptionsFor(agent, input, caller);
            if (chatOptions.Temperature > settings.MaxTemperature)
            {
                reason = $"the temperature {chatOptions.Temperature} is above Cache:MaxTemperature ({settings.MaxTemperature})";
                return null;
            }
            if (chatOptions.ToolMode is not NoneChatToolMode
                && chatOptions.Tools?.FirstOrDefault(t => !ToolAllowList.Allows(settings.CacheableTools, t.Name)) is { } tool)
            {
                reason = $"the run offers the tool '{tool.Name}', which is not in Cache:CacheableTools";
                return null;
            }
            participants.Add(new CacheParticipant(agent, clients.ChainOf(agent).Select(link => $"{link.Provider}/{link.Model}").ToList(), chatOptions));
        }
        reason = "";
        return participants;
    }

    private async Task<(SemanticPoint? Point, CachedAnswer? Hit, double Score)> SemanticLookupAsync(string scope, PromptFingerprint fingerprint,
        double threshold, CancellationToken cancellationToken)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(options.CurrentValue.SemanticTimeout);
        SemanticPoint? point = null;
        try
        {
            var embedded = await embeddings.EmbedInPreferredSpaceAsync([fingerprint.SemanticText!], limit.Token);
            var vector = embedded.Vectors[0];
            point = new SemanticPoint(new VectorCollection(CollectionName(embedded.Space, vector.Length), vector.Length, TenantFields), vector);
            var filter = Filter(scope, fingerprint.Context);
            var found = await vectors.SearchAsync(point.Collection.Name, vector, SemanticCandidates, threshold, filter, limit.Token);
            var now = time.GetUtcNow().ToUnixTimeMilliseconds();
            foreach (var candidate in found)
            {
                var payload = candidate.Record.Payload;
                var live = long.TryParse(payload.GetValueOrDefault(ExpiresField), out var expires) && expires > now;
                // The exact entry holds the answer: gone (expired, evicted, Redis emptied) means the point is stale too.
                if (live && payload.GetValueOrDefault(EntryField) is { } entry && await ReadAsync(scope, entry) is { } answer)
                    return (point, answer, candidate.Score ?? 0);
                await vectors.DeleteAsync(point.Collection.Name, candidate.Record.Id, filter, CancellationToken.None);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // A slow search (a cold connection, a busy store) does not stop this answer from being stored for the next prompt.
            logger.LogWarning("The semantic cache lookup took longer than {Timeout}; the run goes on without it", options.CurrentValue.SemanticTimeout);
        }
        catch (EmbeddingUnavailableException e)
        {
            logger.LogWarning("The semantic cache is skipped: {Reason}", e.Message);
        }
        catch (VectorStoreException e)
        {
            logger.LogWarning("The semantic cache is skipped: the vector store ({Store}) failed in {Operation}", vectors.Name, e.OperationName);
            point = null;
        }
        return (point, null, 0);
    }

    private async Task<CachedAnswer?> ReadAsync(string scope, string exact) =>
        await ReadAnswerAsync(EntryKey(scope, exact)) is { } answer ? JsonSerializer.Deserialize<CachedAnswer>(answer, Json) : null;

    /// <summary>
    /// The entry's answer (JSON), counting the hit, or null when there is none or Redis cannot be reached. The same script that
    /// reads it in a run's admission round trip (<see cref="Admission.AdmissionScript"/>), with nothing else to check.
    /// </summary>
    private async Task<string?> ReadAnswerAsync(RedisKey entry)
    {
        try
        {
            var read = await Admission.AdmissionScript.EvaluateAsync(redis.GetDatabase(), null, entry);
            return read.Outcome == Admission.AdmissionScript.Outcome.CacheHit ? (string?)read[0] : null;
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            logger.LogWarning("The response cache cannot be read ({Reason}); the run goes on as a miss", e.Message);
            return null;
        }
    }

    private static CacheLookup Hit(string tier, CachedAnswer answer, double? score, Activity? activity)
    {
        PlatformTelemetry.RecordCacheHit(tier, answer.Agent, answer.CostUsd);
        activity?.SetTag("cache.outcome", tier);
        if (score is { } similarity) activity?.SetTag("cache.similarity", similarity);
        Activity.Current?.SetTag("cache.outcome", tier);
        return new CacheLookup(tier, answer, score);
    }

    private static CacheLookup Tagged(CacheLookup lookup, string reason)
    {
        Activity.Current?.SetTag("cache.outcome", lookup.Outcome);
        Activity.Current?.SetTag("cache.reason", reason);
        return lookup;
    }

    private static RedisKey EntryKey(string scope, string exact) => $"cache:{scope}:{exact}";

    private static Dictionary<string, string> Filter(string scope, string context) =>
        new() { [ScopeField] = scope, [ContextField] = context };

    /// <summary>"cache" + the space with anything but [a-z0-9.-] as '-' + the dimension: cache_local_1024 (the memory's naming).</summary>
    private string CollectionName(string space, int dimensions)
    {
        var slug = new string(space.ToLowerInvariant().Select(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '.' or '-' ? c : '-').ToArray());
        return $"{options.CurrentValue.CollectionPrefix}_{slug}_{dimensions}";
    }

    /// <summary>One point per scope and exact prompt: storing the same prompt's answer again replaces it.</summary>
    private static Guid PointId(string scope, string exact)
    {
        var bytes = SHA256.HashData(Encoding.UTF8.GetBytes($"cache\n{scope}\n{exact}")).AsSpan(0, 16).ToArray();
        bytes[6] = (byte)((bytes[6] & 0x0F) | 0x80); // version 8: a custom, name-based UUID
        bytes[8] = (byte)((bytes[8] & 0x3F) | 0x80); // RFC 9562 variant
        return new Guid(bytes, bigEndian: true);
    }

    /// <summary>The answer in pieces of about <see cref="ReplayChunkLength"/> characters, cut after a space where there is one.</summary>
    internal static IEnumerable<string> Chunks(string text)
    {
        for (var start = 0; start < text.Length;)
        {
            var end = Math.Min(text.Length, start + ReplayChunkLength);
            if (end < text.Length && text.LastIndexOf(' ', end - 1, end - start) is var space and > 0 && space > start) end = space + 1;
            yield return text[start..end];
            start = end;
        }
    }
}
