using AgentPlatform.Engine.Tasks;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace AgentPlatform.Engine.Data.Configurations;

internal sealed class TaskFeedbackConfiguration : IEntityTypeConfiguration<TaskFeedback>
{
    public void Configure(EntityTypeBuilder<TaskFeedback> feedback)
    {
        feedback.ToTable("task_feedback");
        feedback.HasKey(f => f.TaskId);
        feedback.Property(f => f.Comment).HasMaxLength(2000);
        feedback.HasOne<AgentTask>().WithOne().HasForeignKey<TaskFeedback>(f => f.TaskId).OnDelete(DeleteBehavior.Cascade);
    }
}
