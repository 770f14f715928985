using AgentPlatform.Engine.Billing;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace AgentPlatform.Engine.Data.Configurations;

internal sealed class UsageEntryConfiguration : IEntityTypeConfiguration<UsageEntry>
{
    public void Configure(EntityTypeBuilder<UsageEntry> entry)
    {
        entry.ToTable("usage_ledger");
        entry.HasKey(e => e.Id);
        entry.Property(e => e.Agent).HasMaxLength(100);
        entry.Property(e => e.Model).HasMaxLength(200);
        entry.Property(e => e.Kind).HasMaxLength(20);
        // The same precision as a task's cost_usd: the ledger's sums equal the tasks' to the last digit.
        entry.Property(e => e.CostUsd).HasPrecision(18, 8);
        entry.Property(e => e.CacheOutcome).HasMaxLength(20);
        entry.Property(e => e.SessionId).HasMaxLength(200);

        // A key's usage over a range (GET /usage, a key's spend today); an agent's spend today; every key's usage over
        // a range (GET /admin/usage): the table is append-only in time order, where a BRIN index costs next to nothing.
        entry.HasIndex(e => new { e.ApiKeyId, e.CreatedAt });
        entry.HasIndex(e => new { e.Agent, e.CreatedAt });
        entry.HasIndex(e => e.CreatedAt).HasMethod("brin");
    }
}
