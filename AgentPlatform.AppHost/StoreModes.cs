using System.Diagnostics;
using Microsoft.Extensions.Configuration;

namespace AgentPlatform.AppHost;

public enum StoreMode
{
    /// <summary>Not part of the app (only Qdrant may be left out).</summary>
    None,
    /// <summary>A server that already runs; its connection string is configured.</summary>
    Existing,
    /// <summary>A container the AppHost runs.</summary>
    Container,
}

/// <summary>How each store is provided, and why the app cannot start when it cannot be.</summary>
public sealed record StoreModes(StoreMode Redis, StoreMode Postgres, StoreMode Qdrant, string? Problem)
{
    /// <summary>Set to true to build the container app model without asking for a container runtime (tests, CI).</summary>
    public const string SkipRuntimeCheckSetting = "AppHost:SkipContainerRuntimeCheck";

    public static StoreModes Decide(IDistributedApplicationBuilder builder)
    {
        var configuration = builder.Configuration;
        bool Configured(string name) => !string.IsNullOrWhiteSpace(configuration.GetConnectionString(name));

        var redis = Configured("redis") ? StoreMode.Existing : StoreMode.Container;
        var postgres = Configured("agentdb") ? StoreMode.Existing : StoreMode.Container;
        var qdrant = Configured("qdrant") ? StoreMode.Existing : StoreMode.Container;

        // Publishing (azd) only describes containers; nothing runs here, so no runtime is needed.
        if (!builder.ExecutionContext.IsRunMode || configuration.GetValue<bool>(SkipRuntimeCheckSetting)
            || (redis, postgres, qdrant) is (StoreMode.Existing, StoreMode.Existing, StoreMode.Existing))
        {
            return new StoreModes(redis, postgres, qdrant, null);
        }

        var runtime = configuration["ASPIRE_CONTAINER_RUNTIME"] is { Length: > 0 } named ? named : "docker";
        if (ContainerRuntimeAnswers(runtime))
        {
            return new StoreModes(redis, postgres, qdrant, null);
        }

        // Without a runtime, Qdrant is left out (the services fall back to their embedded vector store);
        // Redis and Postgres cannot be.
        if (redis == StoreMode.Container || postgres == StoreMode.Container)
        {
            var missing = string.Join(" and ", new[] { (redis, "redis"), (postgres, "agentdb") }
                .Where(s => s.Item1 == StoreMode.Container).Select(s => "ConnectionStrings__" + s.Item2));
            return new StoreModes(redis, postgres, StoreMode.None,
                $"""
                AgentPlatform.AppHost: no container runtime answered ("{runtime} info" failed), so Aspire cannot run the
                Redis and Postgres containers, and {missing} is not set.
                Either start Docker or Podman (ASPIRE_CONTAINER_RUNTIME=podman), or point the AppHost at servers
                that already run, for example:
                  ConnectionStrings__redis=127.0.0.1:6379
                  ConnectionStrings__agentdb="Host=127.0.0.1;Port=5432;Username=postgres;Password=…;Database=agentdb"
                ./run.sh does the second for you: it starts local Redis and Postgres and passes them in.
                """);
        }
        return new StoreModes(redis, postgres, StoreMode.None, null);
    }

    private static bool ContainerRuntimeAnswers(string runtime)
    {
        try
        {
            var info = new ProcessStartInfo(runtime, "info") { RedirectStandardOutput = true, RedirectStandardError = true };
            using var process = Process.Start(info);
            if (process is null) return false;
            _ = process.StandardOutput.ReadToEndAsync();
            _ = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(TimeSpan.FromSeconds(10)))
            {
                process.Kill(entireProcessTree: true);
                return false;
            }
            return process.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false; // not installed
        }
    }
}
