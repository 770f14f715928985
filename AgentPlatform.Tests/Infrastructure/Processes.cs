using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace AgentPlatform.Tests.Infrastructure;

internal static class Processes
{
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public static bool IsRoot => Environment.UserName == "root";

    /// <summary>Runs a command to completion and returns its output; throws with the output on failure.</summary>
    public static string Run(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) info.ArgumentList.Add(a);
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(60))) process.Kill(entireProcessTree: true);
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} exited {process.ExitCode}: {output.Result}{error.Result}");
        return output.Result;
    }

    /// <summary>Postgres refuses to run as root: run its tools as the postgres user then.</summary>
    public static string RunAsPostgres(string file, params string[] args) =>
        IsRoot ? Run("runuser", ["-u", "postgres", "--", file, .. args]) : Run(file, args);

    public static async Task WaitForPortAsync(int port, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }
        }
    }

    /// <summary>The repository root (where AgentPlatform.slnx is).</summary>
    public static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "AgentPlatform.slnx"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("AgentPlatform.slnx not found above the test output.");
    }

    /// <summary>Debug or Release, whichever built these tests.</summary>
    public static string BuildConfiguration() =>
        AppContext.BaseDirectory.Split(Path.DirectorySeparatorChar).Contains("Release") ? "Release" : "Debug";
}
