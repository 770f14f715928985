using System.Collections.Concurrent;
using System.Diagnostics;

namespace AgentPlatform.Tests.Infrastructure;

/// <summary>The real Worker executable as a child process, so a test can kill it like a crash would.</summary>
public sealed class WorkerProcess : IAsyncDisposable
{
    private readonly IReadOnlyDictionary<string, string> _environment;
    private readonly ConcurrentQueue<string> _output = new();
    private Process? _process;

    public WorkerProcess(IReadOnlyDictionary<string, string> environment) => _environment = environment;

    public string Output => string.Join('\n', _output);
    public bool IsRunning => _process is { HasExited: false };

    /// <summary>The CPU time the running Worker has used (the bench's cost per task, less sensitive to a busy machine than its rate).</summary>
    public TimeSpan ProcessorTime
    {
        get
        {
            _process?.Refresh();
            return _process?.TotalProcessorTime ?? TimeSpan.Zero;
        }
    }

    public async Task StartAsync()
    {
        var dir = Path.Combine(Processes.RepoRoot(), "AgentPlatform.Worker", "bin", Processes.BuildConfiguration(), "net10.0");
        var info = new ProcessStartInfo("dotnet", Path.Combine(dir, "AgentPlatform.Worker.dll"))
        {
            WorkingDirectory = dir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        info.Environment["DOTNET_ENVIRONMENT"] = "Production";
        info.Environment["Logging__Console__FormatterName"] = "simple";
        foreach (var (key, value) in _environment) info.Environment[key] = value;

        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _process = Process.Start(info)!;
        DataReceivedEventHandler collect = (_, e) =>
        {
            if (e.Data is null) return;
            _output.Enqueue(e.Data);
            if (e.Data.Contains("all the dispatchers started")) started.TrySetResult();
        };
        _process.OutputDataReceived += collect;
        _process.ErrorDataReceived += collect;
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();

        var exited = _process.WaitForExitAsync();
        var first = await Task.WhenAny(started.Task, exited, Task.Delay(TimeSpan.FromSeconds(60)));
        if (first != started.Task) throw new InvalidOperationException("The Worker did not start:\n" + Output);
    }

    /// <summary>SIGKILL: no shutdown code runs, exactly like a crash or an OOM kill.</summary>
    public async Task KillAsync()
    {
        if (_process is null) return;
        _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
        _process = null;
    }

    /// <summary>SIGTERM: the graceful shutdown a container orchestrator asks for.</summary>
    public async Task StopGracefullyAsync()
    {
        if (_process is null) return;
        Processes.Run("kill", "-TERM", _process.Id.ToString());
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await _process.WaitForExitAsync(timeout.Token);
        _process = null;
    }

    public async ValueTask DisposeAsync() => await KillAsync();
}
