using AgentPlatform.Engine.Conversations;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace AgentPlatform.Engine.Data.Configurations;

internal sealed class ConversationConfiguration : IEntityTypeConfiguration<Conversation>
{
    public void Configure(EntityTypeBuilder<Conversation> conversation)
    {
        conversation.ToTable("conversations");
        conversation.HasKey(c => new { c.ApiKeyId, c.SessionId });
        conversation.Property(c => c.SessionId).HasMaxLength(ConversationRules.MaxSessionIdLength);
        conversation.Property(c => c.Title).HasMaxLength(ConversationRules.TitleLength + 1);
        conversation.HasIndex(c => new { c.ApiKeyId, c.UpdatedAt });
    }
}

internal sealed class ConversationMessageConfiguration : IEntityTypeConfiguration<ConversationMessage>
{
    public void Configure(EntityTypeBuilder<ConversationMessage> message)
    {
        message.ToTable("conversation_messages");
        message.HasKey(m => m.Id);
        message.Property(m => m.SessionId).HasMaxLength(ConversationRules.MaxSessionIdLength);
        message.Property(m => m.Role).HasMaxLength(20);
        message.Property(m => m.Agent).HasMaxLength(100);
        message.Property(m => m.Model).HasMaxLength(200);
        message.HasIndex(m => new { m.ApiKeyId, m.SessionId, m.Seq }).IsUnique();
        message.HasOne<Conversation>().WithMany().HasForeignKey(m => new { m.ApiKeyId, m.SessionId }).OnDelete(DeleteBehavior.Cascade);
    }
}
