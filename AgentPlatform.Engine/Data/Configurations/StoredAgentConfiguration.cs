using AgentPlatform.Engine.Agents;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace AgentPlatform.Engine.Data.Configurations;

internal sealed class StoredAgentConfiguration : IEntityTypeConfiguration<StoredAgent>
{
    public void Configure(EntityTypeBuilder<StoredAgent> agent)
    {
        agent.ToTable("agents");
        agent.HasKey(a => a.Name);
        agent.Property(a => a.Name).HasMaxLength(100);
        agent.Property(a => a.DefinitionJson).HasColumnType("jsonb");
    }
}
