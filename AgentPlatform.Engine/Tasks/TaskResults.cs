using AgentPlatform.Engine.Infrastructure;
using Npgsql;

namespace AgentPlatform.Engine.Tasks;

/// <summary>
/// Records finished runs' results in their task rows, each only if the task is still its run's (the same condition per row
/// as a run's own update). Results that arrive while another write is in flight go together in the next statement (group
/// commit, as <see cref="TaskWriteBehind"/> inserts): a Worker draining a backlog paid a Postgres round trip and
/// transaction per task for its final update. Hand-written because neither EF Core nor Npgsql groups the conditional
/// updates of concurrent callers; a write that fails (Postgres away) fails for every run in it, and each retries.
/// </summary>
public sealed class TaskResults(NpgsqlDataSource dataSource)
{
    private const int MaxBatch = 500;

    private sealed record Pending(AgentTask Task)
    {
        public TaskCompletionSource<bool> Recorded { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private GroupCommit<Pending>? _queue;
    private GroupCommit<Pending> Queue => LazyInitializer.EnsureInitialized(ref _queue, () => new(WriteAsync, TakeBatch));

    /// <summary>Records the finished task's result; false when the task is no longer this run's (cancelled, taken over).</summary>
    public Task<bool> RecordAsync(AgentTask task)
    {
        var pending = new Pending(task);
        Queue.Add(pending);
        return pending.Recorded.Task;
    }

    private async Task WriteAsync(List<Pending> batch)
    {
        try
        {
            var recorded = await UpdateAsync(batch);
            foreach (var pending in batch) pending.Recorded.TrySetResult(recorded.Contains((pending.Task.Id, pending.Task.LeaseOwner)));
        }
        catch (PostgresException) when (batch.Count > 1)
        {
            // Postgres refused the statement (not an outage): one row's value, most likely. Each run's alone, so that
            // only the run whose row it is sees the error.
            foreach (var pending in batch) await WriteAloneAsync(pending);
        }
        catch (Exception e)
        {
            foreach (var pending in batch) pending.Recorded.TrySetException(e);
        }
    }

    private async Task WriteAloneAsync(Pending pending)
    {
        try
        {
            pending.Recorded.TrySetResult((await UpdateAsync([pending])).Count == 1);
        }
        catch (Exception e)
        {
            pending.Recorded.TrySetException(e);
        }
    }

    /// <summary>What has gathered, up to <see cref="MaxBatch"/>, one run per task (two runs of one task go in turn).</summary>
    private static (List<Pending> Batch, List<Pending> Later) TakeBatch(List<Pending> queued)
    {
        var (batch, rest, ids) = (new List<Pending>(), new List<Pending>(), new HashSet<Guid>());
        foreach (var pending in queued)
        {
            if (batch.Count < MaxBatch && ids.Add(pending.Task.Id)) batch.Add(pending);
            else rest.Add(pending);
        }
        return (batch, rest);
    }

    // Still this run's: running under its lease, or handed back to the queue by the sweep (its lease lapsed during an
    // outage) but not claimed by another run since (that would have counted an attempt). TaskRunner's own condition.
    // The rows are locked in id order first, as every statement here that updates several tasks does (TaskRunner's claim,
    // JobIdWriter): two such statements taking the same rows in different orders deadlocked under load.
    private const string UpdateSql = $"""
        WITH locked AS MATERIALIZED (SELECT "Id" FROM agent_tasks WHERE "Id" = ANY(@id) ORDER BY "Id" FOR UPDATE)
        UPDATE agent_tasks AS t SET "Status" = v.status, "Agent" = v.agent, "Result" = v.result, "Error" = v.error, "Model" = v.model,
            "PromptTokens" = v.prompt, "CompletionTokens" = v.completion, "CostUsd" = v.cost, "DurationMs" = v.duration,
            "Strategy" = v.strategy, "RoutingJson" = v.routing::jsonb, "ToolCallsJson" = v.tools::jsonb, "CacheOutcome" = v.cache,
            "LeaseOwner" = v.owner, "LeaseExpiresAt" = NULL, "CompletedAt" = v.completed
        FROM unnest(@id, @owner, @attempts, @status, @agent, @result, @error, @model, @prompt, @completion, @cost, @duration, @strategy,
            @routing, @tools, @cache, @completed)
            AS v(id, owner, attempts, status, agent, result, error, model, prompt, completion, cost, duration, strategy, routing, tools,
                 cache, completed)
        WHERE t."Id" = v.id AND t."Id" IN (SELECT "Id" FROM locked)
            AND ((t."Status" = '{TaskStatus.Running}' AND t."LeaseOwner" = v.owner)
                OR (t."Status" = '{TaskStatus.Queued}' AND t."LeaseOwner" IS NULL AND t."Attempts" = v.attempts))
        RETURNING v.id, v.owner
        """;

    private async Task<HashSet<(Guid, Guid?)>> UpdateAsync(List<Pending> batch)
    {
        var tasks = batch.ConvertAll(p => p.Task);
        await using var command = dataSource.CreateCommand(UpdateSql);
        var parameters = command.Parameters;
        parameters.Add(new NpgsqlParameter<Guid[]>("id", tasks.Select(t => t.Id).ToArray()));
        parameters.Add(new NpgsqlParameter<Guid?[]>("owner", tasks.Select(t => t.LeaseOwner).ToArray()));
        parameters.Add(new NpgsqlParameter<int[]>("attempts", tasks.Select(t => t.Attempts).ToArray()));
        parameters.Add(PostgresArrays.Text("agent", tasks.Select(t => (string?)t.Agent)));
        AddOutcome(parameters, tasks);
        var recorded = new HashSet<(Guid, Guid?)>();
        await using var reader = await command.ExecuteReaderAsync(CancellationToken.None);
        while (await reader.ReadAsync(CancellationToken.None))
            recorded.Add((reader.GetGuid(0), await reader.IsDBNullAsync(1) ? null : reader.GetGuid(1)));
        return recorded;
    }

    /// <summary>
    /// A finished task's outcome columns as arrays, one element per task (@status, @result, … @completed): the final update
    /// here and the write-behind's insert name them alike.
    /// </summary>
    internal static void AddOutcome(NpgsqlParameterCollection parameters, IReadOnlyList<AgentTask> tasks)
    {
        parameters.Add(PostgresArrays.Text("status", tasks.Select(t => (string?)t.Status)));
        parameters.Add(PostgresArrays.Text("result", tasks.Select(t => t.Result)));
        parameters.Add(PostgresArrays.Text("error", tasks.Select(t => t.Error)));
        parameters.Add(PostgresArrays.Text("model", tasks.Select(t => t.Model)));
        parameters.Add(new NpgsqlParameter<int?[]>("prompt", tasks.Select(t => t.PromptTokens).ToArray()));
        parameters.Add(new NpgsqlParameter<int?[]>("completion", tasks.Select(t => t.CompletionTokens).ToArray()));
        parameters.Add(new NpgsqlParameter<decimal?[]>("cost", tasks.Select(t => t.CostUsd).ToArray()));
        parameters.Add(new NpgsqlParameter<long?[]>("duration", tasks.Select(t => t.DurationMs).ToArray()));
        parameters.Add(PostgresArrays.Text("strategy", tasks.Select(t => t.Strategy)));
        parameters.Add(PostgresArrays.Text("routing", tasks.Select(t => t.RoutingJsonToStore())));
        parameters.Add(PostgresArrays.Text("tools", tasks.Select(t => t.ToolCallsJson)));
        parameters.Add(PostgresArrays.Text("cache", tasks.Select(t => t.CacheOutcome)));
        parameters.Add(new NpgsqlParameter<DateTimeOffset?[]>("completed", tasks.Select(t => t.CompletedAt?.ToUniversalTime()).ToArray()));
    }
}
