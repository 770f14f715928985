namespace AgentPlatform.Engine.Admission;

/// <summary>
/// Binds the "Tiers" section: limits per tier name. A key whose tier is not here is refused (ConfiguredTierRequirement);
/// within a configured tier, a missing or zero limit means unlimited.
/// </summary>
public sealed class TierOptions
{
    public const string SectionName = "Tiers";

    public Dictionary<string, TierLimits> Limits { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    public TierLimits? Find(string tier) => Limits.TryGetValue(tier, out var limits) ? limits : null;
}

public sealed class TierLimits
{
    public int? RequestsPerMinute { get; set; }
    public int? TokensPerMinute { get; set; }
    public decimal? DailyBudgetUsd { get; set; }
}
