using System.Text.Json;
using AgentPlatform.Engine.Data;
using AgentPlatform.Engine.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace AgentPlatform.Engine.Conversations;

/// <summary>A message as the history and the API show it.</summary>
public sealed record StoredMessage(Guid Id, int Seq, string Role, string Content, string? Agent, string? Model, Guid? TaskId,
    DateTimeOffset CreatedAt);

/// <summary>
/// Conversation history: durable in Postgres (written in the same transaction that completes the turn's task), hot in
/// Redis (a list per session, sliding TTL) so a turn reads its history in one round trip. Redis is only a copy: a
/// session survives a Redis restart, an expired copy is reloaded, and a Redis outage falls back to Postgres.
/// <para>
/// The copy is trusted only when it is complete up to the session's newest message number in Postgres, read (one
/// primary-key lookup) while Redis answers: a copy left behind by a writer that could not reach Redis, or by a Redis
/// restored from an older snapshot, is reloaded, never served. Writers extend the list after their commit only when it
/// ends right before their messages, and raise a second key (<c>…:seq</c>) that a reload may not write below, so a
/// reader racing a writer, or two turns of one session finishing out of order, cost a reload, not a stale copy.
/// </para>
/// </summary>
public sealed class ConversationStore(AgentDbContext db, IConnectionMultiplexer redis, IOptions<ConversationOptions> options,
    ILogger<ConversationStore> logger)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    // KEYS: list, seq. ARGV: ttl ms. Returns the list; refreshes both TTLs (an idle session's copy expires, a used one stays).
    private const string ReadScript = """
        local items = redis.call('LRANGE', KEYS[1], 0, -1)
        if #items > 0 then
          redis.call('PEXPIRE', KEYS[1], ARGV[1])
          redis.call('PEXPIRE', KEYS[2], ARGV[1])
        end
        return items
        """;

    // KEYS: list, seq. ARGV: ttl ms, last seq, header, messages… Writes a loaded state unless a newer one is known.
    private const string LoadScript = """
        local seq = tonumber(redis.call('GET', KEYS[2]) or '-1')
        if seq > tonumber(ARGV[2]) then return 0 end
        redis.call('DEL', KEYS[1])
        redis.call('RPUSH', KEYS[1], unpack(ARGV, 3))
        redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[1])
        redis.call('PEXPIRE', KEYS[1], ARGV[1])
        return 1
        """;

    // KEYS: list, seq. ARGV: ttl ms, number before the new messages, new last number, header, messages… After a commit.
    private const string AppendScript = """
        local seq = tonumber(redis.call('GET', KEYS[2]) or '-1')
        local last = tonumber(ARGV[3])
        if seq >= last then return 0 end
        if seq == tonumber(ARGV[2]) and redis.call('EXISTS', KEYS[1]) == 1 then
          redis.call('LSET', KEYS[1], 0, ARGV[4])
          if #ARGV > 4 then redis.call('RPUSH', KEYS[1], unpack(ARGV, 5)) end
          redis.call('PEXPIRE', KEYS[1], ARGV[1])
        else
          redis.call('DEL', KEYS[1])
        end
        redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[1])
        return 1
        """;

    /// <summary>The list's first element: the number it is complete up to.</summary>
    private sealed record Header(int Last);

    private TimeSpan Ttl => options.Value.HotTtl;

    private static RedisKey ListKey(Guid keyId, string sessionId) => $"conv:{keyId:N}:{sessionId}";
    private static RedisKey SeqKey(Guid keyId, string sessionId) => $"conv:{keyId:N}:{sessionId}:seq";

    /// <summary>The session's messages, oldest first (empty when it has none or is not this key's).</summary>
    public async Task<IReadOnlyList<StoredMessage>> HistoryAsync(Guid keyId, string sessionId, CancellationToken cancellationToken)
    {
        var (list, seq) = (ListKey(keyId, sessionId), SeqKey(keyId, sessionId));
        // The session's newest number from Postgres (one primary-key read) while Redis answers with the copy.
        var lastRead = db.Conversations.AsNoTracking().Where(c => c.ApiKeyId == keyId && c.SessionId == sessionId)
            .Select(c => (int?)c.LastSeq).FirstOrDefaultAsync(cancellationToken);
        RedisValue[]? items = null;
        try
        {
            items = (RedisValue[])(await redis.GetDatabase().ScriptEvaluateAsync(ReadScript, [list, seq],
                [(long)Ttl.TotalMilliseconds]))!;
        }
        catch (RedisException e)
        {
            logger.LogWarning("Hot history of a session unavailable ({Message}); reading Postgres", e.Message);
        }
        var last = await lastRead;
        if (last is null) return [];
        if (items is { Length: > 0 } && JsonSerializer.Deserialize<Header>(items[0].ToString(), Json)?.Last == last)
            return items.Skip(1).Select(i => JsonSerializer.Deserialize<StoredMessage>(i.ToString(), Json)!).ToList();

        var messages = await db.ConversationMessages.AsNoTracking()
            .Where(m => m.ApiKeyId == keyId && m.SessionId == sessionId && m.Seq <= last)
            .OrderBy(m => m.Seq)
            .Select(m => new StoredMessage(m.Id, m.Seq, m.Role, m.Content, m.Agent, m.Model, m.TaskId, m.CreatedAt))
            .ToListAsync(cancellationToken);
        if (items is not null)
        {
            await TryRedisAsync(() => redis.GetDatabase().ScriptEvaluateAsync(LoadScript, [list, seq],
                [(long)Ttl.TotalMilliseconds, last.Value, Serialize(new Header(last.Value)), .. messages.Select(Serialize)]));
        }
        return messages;
    }

    public Task<Conversation?> FindAsync(Guid keyId, string sessionId, CancellationToken cancellationToken) =>
        db.Conversations.AsNoTracking().FirstOrDefaultAsync(c => c.ApiKeyId == keyId && c.SessionId == sessionId, cancellationToken);

    /// <summary>The key's sessions that have messages, most recently active first.</summary>
    public Task<List<Conversation>> ListAsync(Guid keyId, int limit, CancellationToken cancellationToken) =>
        db.Conversations.AsNoTracking().Where(c => c.ApiKeyId == keyId && c.MessageCount > 0)
            .OrderByDescending(c => c.UpdatedAt).Take(limit).ToListAsync(cancellationToken);

    /// <summary>Sessions with a message within the hot TTL (the active-conversations gauge).</summary>
    public Task<int> CountActiveAsync(CancellationToken cancellationToken)
    {
        var since = DateTimeOffset.UtcNow - Ttl;
        return db.Conversations.CountAsync(c => c.MessageCount > 0 && c.UpdatedAt > since, cancellationToken);
    }

    /// <summary>
    /// Stores a completed turn (the user's message and the reply) in the caller's open transaction; call
    /// <see cref="PublishAsync"/> once it committed.
    /// </summary>
    public async Task<AppendedTurn> AppendTurnAsync(Guid keyId, string sessionId, StoredMessage user, StoredMessage reply)
    {
        var now = DateTimeOffset.UtcNow;
        var title = ConversationRules.Title(user.Content);
        // The upsert locks the session's row until commit: turns of one session are numbered one after the other.
        var last = (await db.Database.SqlQuery<int>($"""
            INSERT INTO conversations ("ApiKeyId", "SessionId", "LastSeq", "MessageCount", "Title", "SummaryThrough", "CreatedAt", "UpdatedAt")
            VALUES ({keyId}, {sessionId}, 2, 2, {title}, 0, {now}, {now})
            ON CONFLICT ("ApiKeyId", "SessionId") DO UPDATE SET
                "LastSeq" = conversations."LastSeq" + 2,
                "MessageCount" = LEAST(conversations."MessageCount" + 2, {options.Value.MaxMessagesPerSession}),
                "Title" = COALESCE(conversations."Title", EXCLUDED."Title"),
                "UpdatedAt" = EXCLUDED."UpdatedAt"
            RETURNING "LastSeq" AS "Value"
            """).ToListAsync()).Single();
        user = user with { Seq = last - 1 };
        reply = reply with { Seq = last };
        await db.Database.ExecuteSqlAsync($"""
            INSERT INTO conversation_messages ("Id", "ApiKeyId", "SessionId", "Seq", "Role", "Content", "Agent", "Model", "TaskId", "CreatedAt")
            VALUES ({user.Id}, {keyId}, {sessionId}, {user.Seq}, {user.Role}, {user.Content}, {user.Agent}, {user.Model}, {user.TaskId}, {user.CreatedAt}),
                   ({reply.Id}, {keyId}, {sessionId}, {reply.Seq}, {reply.Role}, {reply.Content}, {reply.Agent}, {reply.Model}, {reply.TaskId}, {reply.CreatedAt})
            """);
        var oldest = last - options.Value.MaxMessagesPerSession;
        if (oldest > 0)
            await db.Database.ExecuteSqlAsync(
                $"""DELETE FROM conversation_messages WHERE "ApiKeyId" = {keyId} AND "SessionId" = {sessionId} AND "Seq" <= {oldest}""");
        return new AppendedTurn(keyId, sessionId, last, oldest > 0, [user, reply]);
    }

    /// <summary>Brings the hot copy up to a committed turn (or drops it, when it cannot be extended in order).</summary>
    public async Task PublishAsync(AppendedTurn turn)
    {
        var (list, seq) = (ListKey(turn.KeyId, turn.SessionId), SeqKey(turn.KeyId, turn.SessionId));
        var before = turn.Trimmed ? -2 : turn.Last - turn.Messages.Count; // trimmed: the copy is reloaded, not extended
        await TryRedisAsync(() => redis.GetDatabase().ScriptEvaluateAsync(AppendScript, [list, seq],
            [(long)Ttl.TotalMilliseconds, before, turn.Last, Serialize(new Header(turn.Last)), .. turn.Messages.Select(Serialize)]));
    }

    /// <summary>Removes the session's messages (not another key's); false when it had none.</summary>
    public async Task<bool> ClearAsync(Guid keyId, string sessionId, CancellationToken cancellationToken)
    {
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        // Clearing takes a number too, so a reload that read the messages before the clear cannot write them back.
        var last = (await db.Database.SqlQuery<int>($"""
            UPDATE conversations SET "LastSeq" = "LastSeq" + 1, "MessageCount" = 0, "Title" = NULL, "Summary" = NULL,
                "SummaryThrough" = "LastSeq" + 1, "UpdatedAt" = {DateTimeOffset.UtcNow}
            WHERE "ApiKeyId" = {keyId} AND "SessionId" = {sessionId} AND "MessageCount" > 0
            RETURNING "LastSeq" AS "Value"
            """).ToListAsync(cancellationToken)).SingleOrDefault();
        if (last == 0) return false;
        await db.Database.ExecuteSqlAsync(
            $"""DELETE FROM conversation_messages WHERE "ApiKeyId" = {keyId} AND "SessionId" = {sessionId}""", cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        await TryRedisAsync(() => redis.GetDatabase().ScriptEvaluateAsync(LoadScript, [ListKey(keyId, sessionId), SeqKey(keyId, sessionId)],
            [(long)Ttl.TotalMilliseconds, last, Serialize(new Header(last))]));
        return true;
    }

    /// <summary>Keeps a summary of the messages up to <paramref name="through"/>, unless a newer one is kept already.</summary>
    public Task SaveSummaryAsync(Guid keyId, string sessionId, string summary, int through) =>
        db.Conversations.Where(c => c.ApiKeyId == keyId && c.SessionId == sessionId && c.SummaryThrough < through)
            .ExecuteUpdateAsync(s => s.SetProperty(c => c.Summary, summary).SetProperty(c => c.SummaryThrough, through));

    private static RedisValue Serialize<T>(T value) => JsonSerializer.Serialize(value, Json);

    private async Task TryRedisAsync(Func<Task> action)
    {
        try
        {
            await action();
        }
        catch (RedisException e)
        {
            // Postgres has the history; the hot copy is rebuilt on a later read.
            logger.LogWarning("Could not update the hot history in Redis ({Message})", e.Message);
        }
    }
}

/// <summary>A turn stored in Postgres, to be published to the hot copy after commit.</summary>
public sealed record AppendedTurn(Guid KeyId, string SessionId, int Last, bool Trimmed, IReadOnlyList<StoredMessage> Messages);
