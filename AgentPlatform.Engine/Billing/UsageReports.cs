using System.Globalization;
using System.Text.Json.Serialization;
using Npgsql;

namespace AgentPlatform.Engine.Billing;

/// <summary>What a usage report groups by.</summary>
public static class UsageGrouping
{
    public const string Day = "day";
    public const string Agent = "agent";
    public const string Model = "model";
    public const string Kind = "kind";
    public const string Key = "key";

    /// <summary>What a key may group its own usage by.</summary>
    public static readonly IReadOnlyList<string> ForCaller = [Day, Agent, Model, Kind];

    /// <summary>What the admin may group everyone's usage by.</summary>
    public static readonly IReadOnlyList<string> ForAdmin = [Day, Agent, Model, Kind, Key];
}

/// <param name="From">Inclusive.</param>
/// <param name="To">Exclusive.</param>
/// <param name="ApiKeyId">One key's usage; null for every key's.</param>
public sealed record UsageQuery(DateTimeOffset From, DateTimeOffset To, string GroupBy, Guid? ApiKeyId);

public sealed record UsageTotals(long Calls, long InputTokens, long OutputTokens, decimal CostUsd)
{
    public long TotalTokens => InputTokens + OutputTokens;
}

/// <param name="Group">The day (yyyy-MM-dd, UTC), agent, model, kind or key id; null where the entries have none (an embedding's agent).</param>
/// <param name="Name">The key's name, when grouped by key.</param>
public sealed record UsageGroup(string? Group, long Calls, long InputTokens, long OutputTokens, decimal CostUsd,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Name = null)
{
    public long TotalTokens => InputTokens + OutputTokens;
}

public sealed record UsageReport(UsageTotals Totals, IReadOnlyList<UsageGroup> Groups);

/// <summary>
/// Totals and breakdowns from the usage ledger: one grouped query over the table, plus this process's entries that are
/// not written yet (left out of the query by id, so none is counted twice). Entries other instances have not written
/// yet are at most one flush interval away.
/// </summary>
public sealed class UsageReports(NpgsqlDataSource dataSource, UsageLedger ledger)
{
    public async Task<UsageReport> ReadAsync(UsageQuery query, CancellationToken cancellationToken)
    {
        var (sqlGroup, groupOf) = Grouping(query.GroupBy);
        var unwritten = ledger.UnwrittenWhere(e => e.CreatedAt >= query.From && e.CreatedAt < query.To
                                                   && (query.ApiKeyId is null || e.ApiKeyId == query.ApiKeyId));

        var groups = new Dictionary<string, UsageGroup>();
        UsageGroup? nullGroup = null;
        void Add(UsageGroup group)
        {
            var existing = group.Group is null ? nullGroup : groups.GetValueOrDefault(group.Group);
            var merged = existing is null ? group : existing with
            {
                Calls = existing.Calls + group.Calls,
                InputTokens = existing.InputTokens + group.InputTokens,
                OutputTokens = existing.OutputTokens + group.OutputTokens,
                CostUsd = existing.CostUsd + group.CostUsd,
            };
            if (group.Group is null) nullGroup = merged;
            else groups[group.Group] = merged;
        }

        await using (var command = dataSource.CreateCommand($"""
            SELECT {sqlGroup}, COUNT(*), COALESCE(SUM("InputTokens"), 0), COALESCE(SUM("OutputTokens"), 0), COALESCE(SUM("CostUsd"), 0)
            FROM usage_ledger
            WHERE "CreatedAt" >= @from AND "CreatedAt" < @to {(query.ApiKeyId is null ? "" : "AND \"ApiKeyId\" = @key")}
              AND NOT ("Id" = ANY(@unwritten))
            GROUP BY 1
            """))
        {
            command.Parameters.AddWithValue("from", query.From.ToUniversalTime());
            command.Parameters.AddWithValue("to", query.To.ToUniversalTime());
            if (query.ApiKeyId is { } key) command.Parameters.AddWithValue("key", key);
            command.Parameters.AddWithValue("unwritten", unwritten.Select(e => e.Id).ToArray());
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                Add(new UsageGroup(reader.IsDBNull(0) ? null : reader.GetString(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3),
                    reader.GetDecimal(4)));
            }
        }
        foreach (var entry in unwritten)
            Add(new UsageGroup(groupOf(entry), 1, entry.InputTokens, entry.OutputTokens, entry.CostUsd));

        var all = groups.Values.Concat(nullGroup is null ? [] : [nullGroup]).ToList();
        if (query.GroupBy == UsageGrouping.Key) all = await NameKeysAsync(all, cancellationToken);
        var ordered = query.GroupBy == UsageGrouping.Day
            ? all.OrderBy(g => g.Group, StringComparer.Ordinal).ToList()
            : all.OrderByDescending(g => g.CostUsd).ThenByDescending(g => g.Calls).ThenBy(g => g.Group, StringComparer.Ordinal).ToList();
        var totals = new UsageTotals(all.Sum(g => g.Calls), all.Sum(g => g.InputTokens), all.Sum(g => g.OutputTokens), all.Sum(g => g.CostUsd));
        return new UsageReport(totals, ordered);
    }

    /// <summary>The SQL expression and the in-memory equivalent of a grouping (only these: never text from a request).</summary>
    private static (string Sql, Func<UsageEntry, string?> Of) Grouping(string groupBy) => groupBy switch
    {
        UsageGrouping.Day => ("to_char(\"CreatedAt\" AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
            e => e.CreatedAt.UtcDateTime.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)),
        UsageGrouping.Agent => ("\"Agent\"", e => e.Agent),
        UsageGrouping.Model => ("\"Model\"", e => e.Model),
        UsageGrouping.Kind => ("\"Kind\"", e => e.Kind),
        UsageGrouping.Key => ("\"ApiKeyId\"::text", e => e.ApiKeyId?.ToString()),
        _ => throw new ArgumentOutOfRangeException(nameof(groupBy), groupBy, $"Group by one of {string.Join(", ", UsageGrouping.ForAdmin)}."),
    };

    private async Task<List<UsageGroup>> NameKeysAsync(List<UsageGroup> groups, CancellationToken cancellationToken)
    {
        var ids = groups.Select(g => Guid.TryParse(g.Group, out var id) ? id : (Guid?)null).OfType<Guid>().ToArray();
        var names = new Dictionary<string, string>();
        await using var command = dataSource.CreateCommand("""SELECT "Id"::text, "Name" FROM api_keys WHERE "Id" = ANY(@ids)""");
        command.Parameters.AddWithValue("ids", ids);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken)) names[reader.GetString(0)] = reader.GetString(1);
        // The admin key has no row: its calls are the admin's.
        return groups.Select(g => g with
        {
            Name = g.Group is null ? null : names.GetValueOrDefault(g.Group) ?? (g.Group == Guid.Empty.ToString() ? "admin" : null),
        }).ToList();
    }
}
