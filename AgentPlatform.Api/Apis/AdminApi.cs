using System.ComponentModel.DataAnnotations;
using AgentPlatform.Api.Auth;
using AgentPlatform.Engine.Admission;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;

namespace AgentPlatform.Api.Apis;

public sealed class CreateKeyRequest
{
    [Required, MinLength(1), MaxLength(200), Display(Name = "name")]
    public string Name { get; init; } = "";

    [Required, MaxLength(50), Display(Name = "tier")]
    public string Tier { get; init; } = "";

    [Range(0.0, 1_000_000.0), Display(Name = "daily_budget_usd")]
    public decimal? DailyBudgetUsd { get; init; }

    public string[]? AllowedAgents { get; init; }
    public string[]? AllowedTools { get; init; }
}

public sealed record CreatedKeyResponse(Guid Id, string Name, string Tier, string Key, decimal? DailyBudgetUsd,
    string[]? AllowedAgents, string[]? AllowedTools, DateTimeOffset CreatedAt);

public sealed record KeyView(Guid Id, string Name, string Tier, string KeyPrefix, decimal? DailyBudgetUsd,
    string[]? AllowedAgents, string[]? AllowedTools, DateTimeOffset CreatedAt, DateTimeOffset? RevokedAt)
{
    public static KeyView From(ApiKey k) =>
        new(k.Id, k.Name, k.Tier, k.KeyPrefix, k.DailyBudgetUsd, k.AllowedAgents, k.AllowedTools, k.CreatedAt, k.RevokedAt);
}

/// <summary>Key management for the admin key only.</summary>
public static class AdminApi
{
    public static IEndpointRouteBuilder MapAdminApi(this IEndpointRouteBuilder app)
    {
        var admin = app.MapGroup("/admin").WithTags("Admin").RequireAuthorization(CallerIdentity.AdminPolicy);

        admin.MapPost("/keys", CreateKeyAsync).WithName("CreateApiKey")
            .WithSummary("Create a client key; the key itself is shown only in this response");
        admin.MapGet("/keys", ListKeysAsync).WithName("ListApiKeys").WithSummary("All keys, without their secrets");
        admin.MapDelete("/keys/{id:guid}", RevokeKeyAsync).WithName("RevokeApiKey").WithSummary("Revoke a key");
        return app;
    }

    public static async Task<Results<Created<CreatedKeyResponse>, ValidationProblem>> CreateKeyAsync(
        CreateKeyRequest request, [FromServices] ApiKeyStore keys, [FromServices] IOptionsMonitor<TierOptions> tiers, CancellationToken cancellationToken)
    {
        if (tiers.CurrentValue.Find(request.Tier) is null)
            return TypedResults.ValidationProblem(new Dictionary<string, string[]>
            {
                ["tier"] = [$"Unknown tier '{request.Tier}'. Known tiers: {string.Join(", ", tiers.CurrentValue.Limits.Keys)}."],
            });

        var (key, secret) = await keys.CreateAsync(request.Name, request.Tier.ToLowerInvariant(), request.DailyBudgetUsd,
            Clean(request.AllowedAgents), Clean(request.AllowedTools), cancellationToken);
        return TypedResults.Created($"/admin/keys/{key.Id}", new CreatedKeyResponse(
            key.Id, key.Name, key.Tier, secret, key.DailyBudgetUsd, key.AllowedAgents, key.AllowedTools, key.CreatedAt));
    }

    public static async Task<Ok<List<KeyView>>> ListKeysAsync([FromServices] ApiKeyStore keys, CancellationToken cancellationToken) =>
        TypedResults.Ok((await keys.ListAsync(cancellationToken)).Select(KeyView.From).ToList());

    public static async Task<Results<NoContent, NotFound<ProblemDetails>>> RevokeKeyAsync(
        Guid id, [FromServices] ApiKeyStore keys, CancellationToken cancellationToken) =>
        await keys.RevokeAsync(id, cancellationToken)
            ? TypedResults.NoContent()
            : TypedResults.NotFound(new ProblemDetails { Status = 404, Title = "Key not found", Detail = $"No active key {id}." });

    private static string[]? Clean(string[]? names) =>
        names is null ? null : names.Where(n => !string.IsNullOrWhiteSpace(n)).Select(n => n.Trim()).Distinct().ToArray();
}
