using Npgsql;

namespace AgentPlatform.Engine.Admission;

/// <summary>Today's spend as the tasks recorded it (each task's cost counts every call of its run).</summary>
public sealed class TaskSpendHistory(NpgsqlDataSource dataSource, TimeProvider time) : ISpendHistory
{
    public Task<decimal> SpentTodayAsync(Guid keyId, CancellationToken cancellationToken) =>
        SumAsync("""SELECT COALESCE(SUM("CostUsd"), 0) FROM agent_tasks WHERE "ApiKeyId" = $1 AND COALESCE("CompletedAt", "CreatedAt") >= $2""",
            keyId, cancellationToken);

    public Task<decimal> SpentTodayByAgentAsync(string agent, CancellationToken cancellationToken) =>
        SumAsync("""SELECT COALESCE(SUM("CostUsd"), 0) FROM agent_tasks WHERE "Agent" = $1 AND COALESCE("CompletedAt", "CreatedAt") >= $2""",
            agent, cancellationToken);

    private async Task<decimal> SumAsync(string sql, object key, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(sql);
        command.Parameters.Add(new NpgsqlParameter { Value = key });
        command.Parameters.Add(new NpgsqlParameter { Value = new DateTimeOffset(time.GetUtcNow().UtcDateTime.Date, TimeSpan.Zero) });
        return (decimal)(await command.ExecuteScalarAsync(cancellationToken))!;
    }
}
