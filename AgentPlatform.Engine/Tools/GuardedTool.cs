using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using AgentPlatform.Engine.Telemetry;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using ModelContextProtocol;

namespace AgentPlatform.Engine.Tools;

/// <summary>The outcome of a tool call, as spans, metrics, task records and the API report it.</summary>
public static class ToolOutcome
{
    public const string Ok = "ok";
    public const string Error = "error";
    public const string Timeout = "timeout";
    public const string InvalidArguments = "invalid_arguments";
}

/// <summary>One finished tool call. <see cref="Errors"/> holds the field errors of invalid arguments.</summary>
internal sealed record ToolRun(string Outcome, JsonElement? Result, string? Error, IReadOnlyDictionary<string, string[]>? Errors, long DurationMs);

/// <summary>
/// A tool as offered to one caller: arguments validated against the schema, a time limit, an
/// <c>execute_tool</c> span, a record in <see cref="ToolCallLog.Current"/>. It never throws for a
/// failing, slow or misused tool: the model gets <c>{"error": …}</c> back and the task goes on
/// (FunctionInvokingChatClient would otherwise hide the reason behind a generic "Function failed").
/// Only the caller's own cancellation propagates, because then the task itself is cancelled.
/// </summary>
internal sealed class GuardedTool(AIFunction inner, string source, ToolCaller caller, TimeSpan timeout, ILogger logger)
    : DelegatingAIFunction(inner)
{
    private const int MaxRecordedChars = 4000;

    public string Source => source;

    /// <summary>The tool as the catalog holds it (one per tool, where this wrapper is one per caller and request).</summary>
    public AIFunction Definition => InnerFunction;

    /// <remarks>
    /// Returns compact JSON text rather than a JsonElement: the OpenAI adapter would re-serialize an
    /// element indented, and every indentation is tokens the model is billed for.
    /// </remarks>
    protected override async ValueTask<object?> InvokeCoreAsync(AIFunctionArguments arguments, CancellationToken cancellationToken)
    {
        var run = await RunAsync(arguments, cancellationToken);
        if (run.Outcome == ToolOutcome.Ok)
            return run.Result is { } result ? result.ValueKind == JsonValueKind.String ? result.GetString() : result.GetRawText() : null;
        var error = new JsonObject { ["error"] = run.Error, ["outcome"] = run.Outcome };
        if (run.Errors is { Count: > 0 })
            error["fields"] = JsonSerializer.SerializeToNode(run.Errors, ToolJson.Options);
        return error.ToJsonString(ToolJson.Options);
    }

    /// <summary>Validates, runs within the time limit and records the call; used by the model path and the direct API.</summary>
    public async Task<ToolRun> RunAsync(AIFunctionArguments arguments, CancellationToken cancellationToken)
    {
        using var activity = PlatformTelemetry.ActivitySource.StartActivity($"execute_tool {Name}", ActivityKind.Internal);
        activity?.SetTag("gen_ai.operation.name", "execute_tool");
        activity?.SetTag("gen_ai.tool.name", Name);
        activity?.SetTag("gen_ai.tool.type", "function");
        activity?.SetTag("gen_ai.tool.call.id", FunctionInvokingChatClient.CurrentContext?.CallContent.CallId);
        activity?.SetTag("tool.source", source);

        var clock = Stopwatch.StartNew();
        var argumentsJson = ToolJson.ToElement(new Dictionary<string, object?>((IDictionary<string, object?>)arguments), JsonSerializerOptions);
        var run = await ExecuteAsync(arguments, argumentsJson, cancellationToken);
        run = run with { DurationMs = (long)clock.Elapsed.TotalMilliseconds };

        activity?.SetTag("tool.outcome", run.Outcome);
        activity?.SetTag("tool.duration_ms", run.DurationMs);
        if (run.Outcome != ToolOutcome.Ok)
        {
            activity?.SetTag("error.type", run.Outcome);
            activity?.SetStatus(ActivityStatusCode.Error, run.Error);
        }
        ToolTelemetry.Record(Name, run.Outcome, clock.Elapsed);

        ToolCallLog.Current?.Add(new ToolCallRecord(Name, Truncate(argumentsJson?.GetRawText()), run.Outcome,
            Truncate(run.Result is { } result ? result.ValueKind == JsonValueKind.String ? result.GetString() : result.GetRawText() : null),
            run.Error, run.DurationMs, DateTimeOffset.UtcNow));
        return run;
    }

    private async Task<ToolRun> ExecuteAsync(AIFunctionArguments arguments, JsonElement? argumentsJson, CancellationToken cancellationToken)
    {
        var errors = ToolArgumentValidator.Validate(JsonSchema, argumentsJson ?? ToolJson.EmptyObject);
        if (errors.Count > 0)
        {
            var summary = string.Join(" ", errors.SelectMany(e => e.Value));
            return new ToolRun(ToolOutcome.InvalidArguments, null, $"Invalid arguments: {summary}", errors, 0);
        }

        // Built-ins that act for the caller (my_tasks) find it in the arguments' context.
        var call = new AIFunctionArguments(arguments)
        {
            Services = arguments.Services,
            Context = new Dictionary<object, object?>(arguments.Context ?? new Dictionary<object, object?>()) { [typeof(ToolCaller)] = caller },
        };

        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(timeout);
        try
        {
            // WaitAsync also ends the wait for a tool that ignores its cancellation token.
            var result = await InnerFunction.InvokeAsync(call, limit.Token).AsTask().WaitAsync(limit.Token);
            return new ToolRun(ToolOutcome.Ok, ToolJson.ToElement(result, JsonSerializerOptions), null, null, 0);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw; // the task was cancelled, not the tool
        }
        catch (OperationCanceledException) when (limit.IsCancellationRequested)
        {
            logger.LogWarning("Tool {Tool} did not finish within {Timeout}", Name, timeout);
            return new ToolRun(ToolOutcome.Timeout, null, $"The tool '{Name}' did not finish within {timeout.TotalSeconds:0.###} s.", null, 0);
        }
        catch (Exception e) when (Describe(e) is { } message)
        {
            logger.LogInformation("Tool {Tool} failed: {Error}", Name, message);
            return new ToolRun(ToolOutcome.Error, null, message, null, 0);
        }
        catch (Exception e)
        {
            // Unexpected exceptions may carry internals (connection strings, paths): log them, report a plain error.
            logger.LogError(e, "Tool {Tool} failed unexpectedly", Name);
            return new ToolRun(ToolOutcome.Error, null, $"The tool '{Name}' failed unexpectedly.", null, 0);
        }
    }

    /// <summary>The messages that are meant for the model: the tool's own failures and argument binding errors.</summary>
    private static string? Describe(Exception e) => e switch
    {
        ToolFailedException or McpException or ArgumentException or FormatException or TimeZoneNotFoundException => e.Message,
        _ => null,
    };

    private static string? Truncate(string? text) =>
        text is { Length: > MaxRecordedChars } ? text[..MaxRecordedChars] + "…" : text;
}
