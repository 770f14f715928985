using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using System.Globalization;
using AgentPlatform.Engine.Data;
using AgentPlatform.Engine.Memory;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using TaskStatus = AgentPlatform.Engine.Tasks.TaskStatus;

namespace AgentPlatform.Engine.Tools;

/// <summary>
/// The tools every instance has: a calculator, the current time, a lookup of the caller's own tasks, and
/// <c>remember</c>, which keeps a fact in the caller's long-term memory.
/// Their JSON schemas come from the parameters (descriptions, [Range], [AllowedValues]) via AIFunctionFactory.
/// </summary>
internal sealed class BuiltInTools(IServiceScopeFactory scopes, TimeProvider time)
{
    public const string Source = "builtin";
    public const string CalculatorName = "calculator";
    public const string CurrentTimeName = "current_time";
    public const string MyTasksName = "my_tasks";
    public const string RememberName = "remember";

    private const int PreviewLength = 200;

    public IEnumerable<AIFunction> Create() =>
    [
        AIFunctionFactory.Create(Calculate, new AIFunctionFactoryOptions
        {
            Name = CalculatorName,
            Description = "Evaluates an arithmetic expression exactly: + - * / % ^ (power), parentheses and decimals, e.g. (2 + 3.5) * 4 ^ 2.",
            SerializerOptions = ToolJson.Options,
        }),
        AIFunctionFactory.Create(CurrentTime, new AIFunctionFactoryOptions
        {
            Name = CurrentTimeName,
            Description = "The current date and time in ISO 8601, in UTC or in a given time zone.",
            SerializerOptions = ToolJson.Options,
        }),
        AIFunctionFactory.Create(MyTasksAsync, new AIFunctionFactoryOptions
        {
            Name = MyTasksName,
            Description = "The caller's most recent tasks on this platform (newest first): id, agent, status, created_at and a short preview of the result or error.",
            SerializerOptions = ToolJson.Options,
        }),
        AIFunctionFactory.Create(RememberAsync, new AIFunctionFactoryOptions
        {
            Name = RememberName,
            Description = "Saves a fact about the user for later conversations (long-term memory): a preference, a detail of their life or work, "
                + "a decision. One short, self-contained statement per call, e.g. \"The user is vegetarian.\" Relevant facts are recalled automatically later.",
            SerializerOptions = ToolJson.Options,
        }),
    ];

    public sealed record CalculatorResult(string Expression, decimal Result);

    public sealed record CurrentTimeResult(string Time, string Timezone, string UtcOffset);

    public sealed record TaskSummary(Guid Id, string Agent, string Status, DateTimeOffset CreatedAt, string? Preview);

    private static CalculatorResult Calculate(
        [Description("The arithmetic expression, e.g. 2 * (3 + 4) or 1.5 ^ 2 % 1"), MaxLength(Calculator.MaxLength)] string expression) =>
        new(expression, Calculator.Evaluate(expression));

    private CurrentTimeResult CurrentTime(
        [Description("An IANA time zone id such as Europe/Paris or America/New_York (Windows ids work where the host supports them); UTC when omitted"), MaxLength(100)]
        string? timezone = null)
    {
        TimeZoneInfo zone;
        try
        {
            zone = string.IsNullOrWhiteSpace(timezone) ? TimeZoneInfo.Utc : TimeZoneInfo.FindSystemTimeZoneById(timezone.Trim());
        }
        catch (Exception e) when (e is TimeZoneNotFoundException or InvalidTimeZoneException)
        {
            throw new ToolFailedException($"Unknown time zone '{timezone}'. Use an IANA id such as Europe/Paris.");
        }
        var now = TimeZoneInfo.ConvertTime(time.GetUtcNow(), zone);
        var offset = now.Offset.ToString((now.Offset < TimeSpan.Zero ? "\\-" : "\\+") + "hh\\:mm", CultureInfo.InvariantCulture);
        return new(now.ToString("yyyy-MM-dd'T'HH:mm:sszzz", CultureInfo.InvariantCulture), zone.Id, offset);
    }

    private async Task<List<TaskSummary>> MyTasksAsync(
        AIFunctionArguments arguments,
        [Description("Only tasks in this status"), AllowedValues(TaskStatus.Queued, TaskStatus.Running, TaskStatus.Completed, TaskStatus.Failed, TaskStatus.Cancelled, null)]
        string? status = null,
        [Description("How many tasks, 1 to 50"), Range(1, 50)] int limit = 10,
        CancellationToken cancellationToken = default)
    {
        // The caller comes from the wrapper (GuardedTool), never from the model's arguments.
        if (arguments.Context?.TryGetValue(typeof(ToolCaller), out var value) != true || value is not ToolCaller caller)
            throw new ToolFailedException("my_tasks needs to know the calling API key.");

        // The catalog is a singleton and AgentDbContext is scoped: one short scope per call.
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<AgentDbContext>();
        var tasks = db.Tasks.AsNoTracking().Where(t => t.ApiKeyId == caller.KeyId);
        if (!string.IsNullOrEmpty(status)) tasks = tasks.Where(t => t.Status == status);
        var rows = await tasks.OrderByDescending(t => t.CreatedAt)
            .Take(Math.Clamp(limit, 1, 50))
            // Only the start of a result is needed: cut it in the database, not after loading it.
            .Select(t => new
            {
                t.Id, t.Agent, t.Status, t.CreatedAt,
                Result = t.Result == null ? null : t.Result.Substring(0, PreviewLength + 1),
                Error = t.Error == null ? null : t.Error.Substring(0, PreviewLength + 1),
            })
            .ToListAsync(cancellationToken);
        return rows.Select(t => new TaskSummary(t.Id, t.Agent, t.Status, t.CreatedAt, Preview(t.Result ?? t.Error))).ToList();
    }

    public sealed record RememberResult(Guid Id, string Content, bool Saved);

    private async Task<RememberResult> RememberAsync(
        AIFunctionArguments arguments,
        [Description("The fact, as one self-contained statement about the user"), MinLength(1), MaxLength(100_000)] string fact,
        CancellationToken cancellationToken = default)
    {
        // The key and the user come from the wrapper (GuardedTool), never from the model's arguments.
        if (arguments.Context?.TryGetValue(typeof(ToolCaller), out var value) != true || value is not ToolCaller caller)
            throw new ToolFailedException("remember needs to know the calling API key.");

        await using var scope = scopes.CreateAsyncScope();
        var memory = scope.ServiceProvider.GetRequiredService<LongTermMemory>();
        try
        {
            var saved = await memory.RememberAsync(caller.KeyId, caller.User, fact, null, LongTermMemory.AgentSource, cancellationToken);
            return new RememberResult(saved.Id, saved.Content, Saved: true);
        }
        catch (Exception e) when (e is MemoryRejectedException or MemoryLimitException or MemoryUnavailableException)
        {
            throw new ToolFailedException(e.Message);
        }
    }

    private static string? Preview(string? text) =>
        text is { Length: > PreviewLength } ? text[..PreviewLength] + "…" : text;
}
