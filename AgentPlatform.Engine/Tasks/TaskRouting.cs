using System.Text.Json;
using System.Text.Json.Serialization;
using AgentPlatform.Engine.Execution;
using AgentPlatform.Engine.Routing;

namespace AgentPlatform.Engine.Tasks;

/// <summary>What the task record keeps of routing and execution (the RoutingJson column).</summary>
public sealed record TaskRouting(RoutingDecision Decision, IReadOnlyList<AgentRun>? Runs)
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static TaskRouting? FromJson(string? json) => string.IsNullOrEmpty(json) ? null : JsonSerializer.Deserialize<TaskRouting>(json, Json);
}
