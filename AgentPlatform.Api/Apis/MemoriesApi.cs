using System.Globalization;
using System.Security.Claims;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using AgentPlatform.Api.Admission;
using AgentPlatform.Api.Auth;
using AgentPlatform.Engine.Memory;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;

namespace AgentPlatform.Api.Apis;

/// <summary>A fact to remember. <c>user</c> keeps it for one end user of the key; without it, it is the key's own.</summary>
public sealed class CreateMemoryRequest : IPromptRequest
{
    public string? Content { get; init; }

    /// <summary>Anything the client wants back with the memory (a JSON object); not shown to the model.</summary>
    public JsonObject? Metadata { get; init; }

    public string? User { get; init; }

    // Memories are recalled into prompts later: the content meets the same injection check as a task.
    public IEnumerable<(string Field, string? Text)> PromptFields()
    {
        yield return ("content", Content);
    }
}

/// <summary>A memory; <c>score</c> (cosine similarity to the query) only in search results.</summary>
public sealed record MemoryView(Guid Id, string Content, JsonObject? Metadata, string? User, string Source, DateTimeOffset CreatedAt,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] double? Score = null)
{
    public static MemoryView From(MemoryRecord memory, double? score = null) =>
        new(memory.Id, memory.Content, memory.Metadata, memory.User, memory.Source, memory.CreatedAt,
            score is { } s && double.IsFinite(s) ? Math.Round(s, 4) : null);
}

public sealed record MemoryList(IReadOnlyList<MemoryView> Memories);

/// <summary>Long-term memory (seed 004): facts kept per key and per user, searched by meaning, recalled into chats.</summary>
public static class MemoriesApi
{
    public const int DefaultLimit = 20;

    public static IEndpointRouteBuilder MapMemoriesApi(this IEndpointRouteBuilder app)
    {
        var memories = app.MapGroup("/agent/memories")
            .WithTags("Memories")
            .RequireAuthorization()
            .AddEndpointFilter<RateLimitFilter>();

        memories.MapPost("/", CreateAsync)
            .AddEndpointFilter<PromptInjectionFilter>()
            .WithName("CreateMemory")
            .WithSummary("Remember a fact for this key (or one of its users); the same content again replaces it")
            .WithDescription("Memories are embedded and kept in the vector store (Qdrant when configured). Chats recall the ones relevant to a new message.");

        memories.MapGet("/", ListAsync)
            .WithName("ListMemories")
            .WithSummary("With ?query=, the memories closest in meaning, with scores; without it, the newest")
            .WithDescription("limit is 1 to 100 (default 20); user narrows to one end user; min_score (with query) drops weaker matches.");

        memories.MapGet("/{id:guid}", GetAsync)
            .WithName("GetMemory")
            .WithSummary("One memory of this key");

        memories.MapDelete("/{id:guid}", DeleteAsync)
            .WithName("DeleteMemory")
            .WithSummary("Forget a memory; another key's memory is not found");

        return app;
    }

    public static async Task<Results<Created<MemoryView>, ValidationProblem, ProblemHttpResult>> CreateAsync(
        CreateMemoryRequest request, [FromServices] LongTermMemory memory, ClaimsPrincipal user, HttpContext http)
    {
        if (memory.Check(request.Content, request.Metadata, request.User) is { Count: > 0 } errors)
            return TypedResults.ValidationProblem(errors);
        try
        {
            var saved = await memory.RememberAsync(user.GetCaller().KeyId, request.User, request.Content!, request.Metadata,
                LongTermMemory.ApiSource, http.RequestAborted);
            return TypedResults.Created($"/agent/memories/{saved.Id}", MemoryView.From(saved));
        }
        catch (MemoryLimitException e)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "Memory limit reached", detail: e.Message);
        }
        catch (MemoryUnavailableException e)
        {
            return Unavailable(e, http);
        }
    }

    public static async Task<Results<Ok<MemoryList>, ValidationProblem, ProblemHttpResult>> ListAsync(
        [FromQuery] string? query, [FromQuery] string? limit, [FromQuery(Name = "user")] string? endUser,
        [FromQuery(Name = "min_score")] string? minScore, [FromServices] LongTermMemory memory, [FromServices] IOptionsMonitor<MemoryOptions> options,
        ClaimsPrincipal user, HttpContext http)
    {
        var errors = new Dictionary<string, string[]>();
        var count = DefaultLimit;
        if (limit is not null && !(int.TryParse(limit, NumberStyles.None, CultureInfo.InvariantCulture, out count) && count is >= 1 and <= LongTermMemory.MaxListLimit))
            errors["limit"] = [$"limit is a whole number from 1 to {LongTermMemory.MaxListLimit}."];
        var search = string.IsNullOrWhiteSpace(query) ? null : query;
        if (search is { Length: var length } && length > options.CurrentValue.MaxContentLength)
            errors["query"] = [$"The query is at most {options.CurrentValue.MaxContentLength:N0} characters."];
        double? threshold = null;
        if (minScore is not null)
        {
            if (!double.TryParse(minScore, NumberStyles.Float, CultureInfo.InvariantCulture, out var parsed) || !(parsed is >= -1 and <= 1))
                errors["min_score"] = ["min_score is a number from -1 to 1 (a cosine similarity)."];
            else if (search is null) errors["min_score"] = ["min_score applies to a search: give a query too."];
            else threshold = parsed;
        }
        if (LongTermMemory.CheckUser(endUser) is { } userError) errors["user"] = [userError];
        if (errors.Count > 0) return TypedResults.ValidationProblem(errors);

        var keyId = user.GetCaller().KeyId;
        try
        {
            if (search is null)
            {
                var newest = await memory.ListAsync(keyId, endUser, count, http.RequestAborted);
                return TypedResults.Ok(new MemoryList(newest.Select(m => MemoryView.From(m)).ToList()));
            }
            var found = await memory.SearchAsync(keyId, endUser, search, count, threshold, http.RequestAborted);
            return TypedResults.Ok(new MemoryList(found.Select(r => MemoryView.From(r.Record, r.Score ?? 0)).ToList()));
        }
        catch (MemoryUnavailableException e)
        {
            return Unavailable(e, http);
        }
    }

    public static async Task<Results<Ok<MemoryView>, NotFound<ProblemDetails>, ValidationProblem, ProblemHttpResult>> GetAsync(
        Guid id, [FromQuery(Name = "user")] string? endUser, [FromServices] LongTermMemory memory, ClaimsPrincipal user, HttpContext http)
    {
        if (LongTermMemory.CheckUser(endUser) is { } userError)
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["user"] = [userError] });
        try
        {
            return await memory.GetAsync(user.GetCaller().KeyId, endUser, id, http.RequestAborted) is { } found
                ? TypedResults.Ok(MemoryView.From(found))
                : MemoryNotFound(id);
        }
        catch (MemoryUnavailableException e)
        {
            return Unavailable(e, http);
        }
    }

    public static async Task<Results<NoContent, NotFound<ProblemDetails>, ValidationProblem, ProblemHttpResult>> DeleteAsync(
        Guid id, [FromQuery(Name = "user")] string? endUser, [FromServices] LongTermMemory memory, ClaimsPrincipal user, HttpContext http)
    {
        if (LongTermMemory.CheckUser(endUser) is { } userError)
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["user"] = [userError] });
        try
        {
            return await memory.DeleteAsync(user.GetCaller().KeyId, endUser, id, http.RequestAborted)
                ? TypedResults.NoContent()
                : MemoryNotFound(id);
        }
        catch (MemoryUnavailableException e)
        {
            return Unavailable(e, http);
        }
    }

    private static NotFound<ProblemDetails> MemoryNotFound(Guid id) => TypedResults.NotFound(new ProblemDetails
    {
        Status = StatusCodes.Status404NotFound,
        Title = "Memory not found",
        Detail = $"No memory {id} belongs to this API key.",
    });

    private static ProblemHttpResult Unavailable(MemoryUnavailableException e, HttpContext http)
    {
        http.Response.Headers.RetryAfter = "5";
        return TypedResults.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "Memory unavailable", detail: e.Message);
    }
}
