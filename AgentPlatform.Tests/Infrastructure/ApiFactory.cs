using AgentPlatform.Engine.Data;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.Logging;

namespace AgentPlatform.Tests.Infrastructure;

/// <summary>The real Api on a real Kestrel port, configured like the AppHost would, with test-sized timings.</summary>
public sealed class ApiFactory(IReadOnlyDictionary<string, string> settings) : WebApplicationFactory<Program>
{
    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Testing");
        foreach (var (key, value) in settings) builder.UseSetting(key.Replace("__", ":"), value);
        builder.ConfigureLogging(logging => logging.SetMinimumLevel(LogLevel.Warning));
    }

    public static ApiFactory StartOnKestrel(IReadOnlyDictionary<string, string> settings)
    {
        var factory = new ApiFactory(settings);
        factory.UseKestrel(0);
        factory.StartServer();
        // The schema is prepared in the background; tests start once it is there, as a client retrying a 503 would.
        factory.Services.GetRequiredService<EngineReadiness>().WhenReady.WaitAsync(TimeSpan.FromSeconds(60)).GetAwaiter().GetResult();
        return factory;
    }
}
