using AgentPlatform.Engine.Tasks;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace AgentPlatform.Engine.Data.Configurations;

internal sealed class AgentTaskConfiguration : IEntityTypeConfiguration<AgentTask>
{
    public void Configure(EntityTypeBuilder<AgentTask> task)
    {
        task.ToTable("agent_tasks");
        task.HasKey(t => t.Id);
        task.Property(t => t.Agent).HasMaxLength(100);
        task.Property(t => t.ContextJson).HasColumnType("jsonb");
        task.Property(t => t.RoutingJson).HasColumnType("jsonb");
        task.Property(t => t.ToolCallsJson).HasColumnType("jsonb");
        task.Property(t => t.Strategy).HasMaxLength(20);
        task.Property(t => t.Priority).HasConversion<string>().HasMaxLength(10);
        task.Property(t => t.Status).HasMaxLength(20);
        task.Property(t => t.SessionId).HasMaxLength(200);
        task.Property(t => t.Model).HasMaxLength(200);
        task.Property(t => t.CostUsd).HasPrecision(18, 8);
        task.Property(t => t.IdempotencyKey).HasMaxLength(200);
        task.Property(t => t.RequestHash).HasMaxLength(64);
        task.Property(t => t.JobId).HasMaxLength(64);
        task.Property(t => t.TraceParent).HasMaxLength(64);
        task.Property(t => t.CacheOutcome).HasMaxLength(20);
        task.Ignore(t => t.IsFinal);

        task.HasIndex(t => new { t.ApiKeyId, t.IdempotencyKey }).IsUnique().HasFilter("\"IdempotencyKey\" IS NOT NULL");
        task.HasIndex(t => new { t.ApiKeyId, t.CreatedAt });
        // The maintenance job looks for queued tasks whose job was never enqueued.
        task.HasIndex(t => t.Status).HasFilter("\"Status\" IN ('queued', 'running')");
        // The lease sweep looks for running tasks whose holder stopped renewing.
        task.HasIndex(t => t.LeaseExpiresAt).HasFilter("\"Status\" = 'running'");
    }
}
