using AgentPlatform.Engine.Memory;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace AgentPlatform.Engine.Data.Configurations;

internal sealed class StoredVectorCollectionConfiguration : IEntityTypeConfiguration<StoredVectorCollection>
{
    public void Configure(EntityTypeBuilder<StoredVectorCollection> collection)
    {
        collection.ToTable("vector_collections");
        collection.HasKey(c => c.Name);
        collection.Property(c => c.Name).HasMaxLength(255);
    }
}

internal sealed class StoredVectorConfiguration : IEntityTypeConfiguration<StoredVector>
{
    public void Configure(EntityTypeBuilder<StoredVector> vector)
    {
        vector.ToTable("vector_points");
        vector.HasKey(v => new { v.Collection, v.Id });
        vector.Property(v => v.Vector).HasColumnType("real[]");
        vector.Property(v => v.Payload).HasColumnType("jsonb");
        vector.HasOne<StoredVectorCollection>().WithMany().HasForeignKey(v => v.Collection).OnDelete(DeleteBehavior.Cascade);
        // Tenant filters are JSON containment (payload @> '{"key_id": …}'): a GIN index finds a tenant's points without a scan of all.
        vector.HasIndex(v => v.Payload).HasMethod("gin").HasOperators("jsonb_path_ops");
        // The newest points of a collection (listings).
        vector.HasIndex(v => new { v.Collection, v.CreatedAt });
    }
}
