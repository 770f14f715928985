using AgentPlatform.Engine.Memory;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using Qdrant.Client;

namespace Microsoft.Extensions.Hosting;

public static class MemoryExtensions
{
    /// <summary>
    /// Long-term memory and the vector store under it: Qdrant when a Qdrant client is registered
    /// (<c>ConnectionStrings__qdrant</c>, see <see cref="QdrantClientExtensions"/>), else the embedded store in Postgres.
    /// </summary>
    public static IHostApplicationBuilder AddLongTermMemory(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<MemoryOptions>().Bind(builder.Configuration.GetSection(MemoryOptions.SectionName)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<MemoryOptions>, MemoryOptionsValidator>();

        services.AddSingleton<IVectorStore>(sp => sp.GetService<QdrantClient>() is { } qdrant
            ? new QdrantVectorStore(qdrant, sp.GetRequiredService<ILogger<QdrantVectorStore>>())
            : new PostgresVectorStore(sp.GetRequiredService<NpgsqlDataSource>(), sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<LongTermMemory>();
        return builder;
    }
}
