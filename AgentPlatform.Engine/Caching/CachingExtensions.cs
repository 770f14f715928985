using AgentPlatform.Engine.Caching;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.Hosting;

public static class CachingExtensions
{
    /// <summary>The response cache (exact in Redis, semantic in the vector store of <see cref="MemoryExtensions.AddLongTermMemory"/>).</summary>
    public static IHostApplicationBuilder AddResponseCache(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<CacheOptions>().Bind(builder.Configuration.GetSection(CacheOptions.SectionName)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<CacheOptions>, CacheOptionsValidator>();
        services.AddSingleton<ResponseCache>();
        return builder;
    }
}
