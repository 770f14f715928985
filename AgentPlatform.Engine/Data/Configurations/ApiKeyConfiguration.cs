using AgentPlatform.Engine.Admission;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace AgentPlatform.Engine.Data.Configurations;

internal sealed class ApiKeyConfiguration : IEntityTypeConfiguration<ApiKey>
{
    public void Configure(EntityTypeBuilder<ApiKey> key)
    {
        key.ToTable("api_keys");
        key.HasKey(k => k.Id);
        key.Property(k => k.Name).HasMaxLength(200);
        key.Property(k => k.Tier).HasMaxLength(50);
        key.Property(k => k.KeyHash).HasMaxLength(64);
        key.Property(k => k.KeyPrefix).HasMaxLength(16);
        key.Property(k => k.WebhookSecret).HasMaxLength(100);
        key.Property(k => k.DailyBudgetUsd).HasPrecision(18, 6);
        key.Property(k => k.AlertWebhookUrl).HasMaxLength(2000);
        key.HasIndex(k => k.KeyHash).IsUnique();
    }
}
