using Npgsql;
using NpgsqlTypes;

namespace AgentPlatform.Engine.Infrastructure;

/// <summary>Array parameters for the batched writes that insert a batch as unnested arrays (one statement per batch).</summary>
internal static class PostgresArrays
{
    /// <summary>A text[] parameter (nulls kept): a string array alone would not tell Npgsql the element type of nulls.</summary>
    public static NpgsqlParameter<string?[]> Text(string name, IEnumerable<string?> values) =>
        new(name, NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = values.ToArray() };
}
