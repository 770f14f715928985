using System.Diagnostics;
using System.Text.Json;
using AgentPlatform.Tests.Infrastructure;

namespace AgentPlatform.AppHost.Tests;

/// <summary>The app model as a machine with a container runtime, and azd, see it; built here without starting anything.</summary>
public sealed class AppModelTests
{
    [Fact]
    public async Task Container_mode_has_the_stores_the_services_their_references_and_health_checks()
    {
        await using var appHost = await DistributedApplicationTestingBuilder.CreateAsync<Projects.AgentPlatform_AppHost>(
            ["AppHost:SkipContainerRuntimeCheck=true"]);
        var resources = appHost.Resources.ToDictionary(r => r.Name);

        Assert.IsType<RedisResource>(resources["redis"]);
        Assert.IsType<PostgresServerResource>(resources["postgres"]);
        Assert.IsType<PostgresDatabaseResource>(resources["agentdb"]);

        var qdrant = Assert.IsAssignableFrom<ContainerResource>(resources["qdrant"]);
        Assert.IsAssignableFrom<IResourceWithConnectionString>(qdrant);
        Assert.Equal("qdrant/qdrant", qdrant.Annotations.OfType<ContainerImageAnnotation>().Single().Image);
        var endpoints = qdrant.Annotations.OfType<EndpointAnnotation>().ToDictionary(e => e.Name);
        Assert.Equal(6333, endpoints["http"].TargetPort);
        Assert.Equal(6334, endpoints["grpc"].TargetPort);
        Assert.Equal("tcp", endpoints["grpc"].UriScheme);
        Assert.NotEmpty(qdrant.Annotations.OfType<HealthCheckAnnotation>());
        Assert.IsAssignableFrom<IResourceWithConnectionString>(resources["qdrant-http"]);

        foreach (var name in new[] { "api", "worker" })
        {
            var service = Assert.IsAssignableFrom<ProjectResource>(resources[name]);
            var references = service.Annotations.OfType<ResourceRelationshipAnnotation>()
                .Where(r => r.Type == "Reference").Select(r => r.Resource.Name).ToHashSet();
            Assert.Superset(new HashSet<string> { "redis", "agentdb", "qdrant", "qdrant-http" }, references);
            var waits = service.Annotations.OfType<WaitAnnotation>().Select(w => w.Resource.Name).ToHashSet();
            Assert.Superset(new HashSet<string> { "redis", "agentdb", "qdrant" }, waits);
        }
        var api = (ProjectResource)resources["api"];
        Assert.NotEmpty(api.Annotations.OfType<HealthCheckAnnotation>());
        Assert.True(api.Annotations.OfType<EndpointAnnotation>().Single(e => e.Name == "http").IsExternal);
        Assert.DoesNotContain(resources["worker"].Annotations.OfType<EndpointAnnotation>(), e => e.IsExternal);
    }

    [Fact]
    public async Task Existing_servers_replace_the_containers()
    {
        await using var appHost = await DistributedApplicationTestingBuilder.CreateAsync<Projects.AgentPlatform_AppHost>(
        [
            "ConnectionStrings:redis=127.0.0.1:6379",
            "ConnectionStrings:agentdb=Host=127.0.0.1;Database=agentdb",
            "ConnectionStrings:qdrant=Endpoint=http://127.0.0.1:6334;Key=k",
        ]);

        Assert.DoesNotContain(appHost.Resources, r => r is ContainerResource);
        Assert.Contains(appHost.Resources, r => r.Name == "redis" && r is IResourceWithConnectionString);
        Assert.Contains(appHost.Resources, r => r.Name == "agentdb" && r is IResourceWithConnectionString);
        Assert.Contains(appHost.Resources, r => r.Name == "qdrant" && r is IResourceWithConnectionString);
    }

    [Fact]
    public async Task Without_a_container_runtime_or_connection_strings_the_apphost_stops_at_once_saying_what_to_do()
    {
        var run = await RunAppHostAsync(TimeSpan.FromSeconds(60), new() { ["ASPIRE_CONTAINER_RUNTIME"] = "no-such-container-runtime" });

        Assert.Equal(1, run.ExitCode);
        Assert.Contains("no container runtime answered", run.Error);
        Assert.Contains("ConnectionStrings__redis", run.Error);
        Assert.Contains("ConnectionStrings__agentdb", run.Error);
        Assert.Contains("./run.sh", run.Error);
        Assert.True(run.Elapsed < TimeSpan.FromSeconds(30), $"took {run.Elapsed}");
    }

    [Fact]
    public async Task Published_manifest_wires_both_services_keeps_only_the_api_external_and_postgres_off_azure_files()
    {
        var output = Path.Combine(Path.GetTempPath(), "agentplatform-manifest-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(output);
        try
        {
            var path = Path.Combine(output, "manifest.json");
            var run = await RunAppHostAsync(TimeSpan.FromMinutes(2), [], "--publisher", "manifest", "--output-path", path);
            Assert.True(run.ExitCode == 0, run.Output + run.Error);
            var resources = JsonDocument.Parse(await File.ReadAllTextAsync(path)).RootElement.GetProperty("resources");

            foreach (var name in new[] { "api", "worker" })
            {
                var env = resources.GetProperty(name).GetProperty("env");
                Assert.Equal("{redis.connectionString}", env.GetProperty("ConnectionStrings__redis").GetString());
                Assert.Equal("{agentdb.connectionString}", env.GetProperty("ConnectionStrings__agentdb").GetString());
                Assert.Equal("{qdrant.connectionString}", env.GetProperty("ConnectionStrings__qdrant").GetString());
                Assert.Equal("{qdrant-http.connectionString}", env.GetProperty("ConnectionStrings__qdrant_http").GetString());
                Assert.Equal("{admin-key.value}", env.GetProperty("Auth__AdminKey").GetString());
            }
            Assert.True(resources.GetProperty("admin-key").GetProperty("inputs").GetProperty("value").GetProperty("secret").GetBoolean());

            Assert.Contains(Bindings(resources, "api"), b => b.GetProperty("external").GetBoolean());
            foreach (var name in new[] { "worker", "redis", "postgres", "qdrant" })
                Assert.DoesNotContain(Bindings(resources, name), b => b.TryGetProperty("external", out var e) && e.GetBoolean());

            Assert.False(resources.GetProperty("postgres").TryGetProperty("volumes", out _), "no data volume on Azure Files");
            var grpc = resources.GetProperty("qdrant").GetProperty("bindings").GetProperty("grpc");
            Assert.Equal(6334, grpc.GetProperty("targetPort").GetInt32());
            Assert.Equal("tcp", grpc.GetProperty("scheme").GetString());
            Assert.False(grpc.TryGetProperty("external", out var external) && external.GetBoolean());
            // The services still get an http:// endpoint for gRPC, built from the binding's host and port.
            Assert.Equal("Endpoint=http://{qdrant.bindings.grpc.host}:{qdrant.bindings.grpc.port};Key={qdrant-key.value}",
                resources.GetProperty("qdrant").GetProperty("connectionString").GetString());
        }
        finally
        {
            Directory.Delete(output, recursive: true);
        }

        static IEnumerable<JsonElement> Bindings(JsonElement resources, string name) =>
            resources.GetProperty(name).TryGetProperty("bindings", out var bindings)
                ? bindings.EnumerateObject().Select(b => b.Value)
                : [];
    }

    private sealed record AppHostRun(int ExitCode, string Output, string Error, TimeSpan Elapsed);

    /// <summary>The built AppHost as a process, with none of this machine's connection strings or keys.</summary>
    private static async Task<AppHostRun> RunAppHostAsync(TimeSpan timeout, Dictionary<string, string> environment, params string[] args)
    {
        var dll = Path.Combine(Processes.RepoRoot(), "AgentPlatform.AppHost", "bin", Processes.BuildConfiguration(), "net10.0",
            "AgentPlatform.AppHost.dll");
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        info.ArgumentList.Add(dll);
        foreach (var arg in args) info.ArgumentList.Add(arg);
        foreach (var key in info.Environment.Keys.Where(k => k.StartsWith("ConnectionStrings__", StringComparison.Ordinal)
                     || k.StartsWith("Auth__", StringComparison.Ordinal) || k == "PORT").ToList())
            info.Environment.Remove(key);
        info.Environment["DOTNET_ENVIRONMENT"] = "Production";
        foreach (var (key, value) in environment) info.Environment[key] = value;

        var clock = Stopwatch.StartNew();
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"The AppHost did not exit within {timeout}: {await output}{await error}");
        }
        return new AppHostRun(process.ExitCode, await output, await error, clock.Elapsed);
    }
}
