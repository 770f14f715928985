using AgentPlatform.Engine.Admission;
using AgentPlatform.Engine.Tasks;
using Microsoft.EntityFrameworkCore;

namespace AgentPlatform.Engine.Data;

public sealed class AgentDbContext(DbContextOptions<AgentDbContext> options) : DbContext(options)
{
    public DbSet<ApiKey> ApiKeys => Set<ApiKey>();
    public DbSet<AgentTask> Tasks => Set<AgentTask>();
    public DbSet<TaskFeedback> Feedback => Set<TaskFeedback>();
    public DbSet<Agents.StoredAgent> Agents => Set<Agents.StoredAgent>();
    public DbSet<Conversations.Conversation> Conversations => Set<Conversations.Conversation>();
    public DbSet<Conversations.ConversationMessage> ConversationMessages => Set<Conversations.ConversationMessage>();
    public DbSet<Memory.StoredVectorCollection> VectorCollections => Set<Memory.StoredVectorCollection>();
    public DbSet<Memory.StoredVector> Vectors => Set<Memory.StoredVector>();
    public DbSet<Billing.UsageEntry> UsageLedger => Set<Billing.UsageEntry>();

    protected override void OnModelCreating(ModelBuilder modelBuilder) =>
        modelBuilder.ApplyConfigurationsFromAssembly(typeof(AgentDbContext).Assembly);
}
