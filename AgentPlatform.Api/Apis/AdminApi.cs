using System.ComponentModel.DataAnnotations;
using AgentPlatform.Api.Auth;
using AgentPlatform.Engine.Admission;
using AgentPlatform.Engine.Agents;
using AgentPlatform.Engine.Llm;
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

    /// <summary>Requests per minute for this key, overriding its tier's.</summary>
    [Range(1, 1_000_000), Display(Name = "rpm_limit")]
    public int? RpmLimit { get; init; }

    /// <summary>Tokens per minute for this key, overriding its tier's.</summary>
    [Range(1, 1_000_000_000), Display(Name = "tpm_limit")]
    public int? TpmLimit { get; init; }

    /// <summary>Where budget alerts go (80 % and 100 % of the daily budget), signed like task webhooks.</summary>
    [MaxLength(2000), Display(Name = "alert_webhook_url")]
    public string? AlertWebhookUrl { get; init; }

    public string[]? AllowedAgents { get; init; }
    public string[]? AllowedTools { get; init; }
}

/// <summary>The new key; <c>key</c> and <c>webhook_secret</c> (which signs its webhooks) are shown only here.</summary>
public sealed record CreatedKeyResponse(Guid Id, string Name, string Tier, string Key, decimal? DailyBudgetUsd,
    string[]? AllowedAgents, string[]? AllowedTools, DateTimeOffset CreatedAt, string? WebhookSecret, int? RpmLimit = null, int? TpmLimit = null);

/// <param name="TierConfigured">False when the key's tier is no longer under Tiers:Limits: the key is refused (403) until it is.</param>
public sealed record KeyView(Guid Id, string Name, string Tier, bool TierConfigured, string KeyPrefix, decimal? DailyBudgetUsd,
    string[]? AllowedAgents, string[]? AllowedTools, DateTimeOffset CreatedAt, DateTimeOffset? RevokedAt, int? RpmLimit, int? TpmLimit,
    string? AlertWebhookUrl)
{
    public static KeyView From(ApiKey k, TierOptions tiers) =>
        new(k.Id, k.Name, k.Tier, tiers.Find(k.Tier) is not null, k.KeyPrefix, k.DailyBudgetUsd, k.AllowedAgents, k.AllowedTools,
            k.CreatedAt, k.RevokedAt, k.RpmLimit, k.TpmLimit, k.AlertWebhookUrl);
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
        admin.MapPost("/keys/{id:guid}/webhook-secret", RotateWebhookSecretAsync).WithName("RotateWebhookSecret")
            .WithSummary("Replace a key's webhook signing secret; the new one is shown only in this response");
        admin.MapPatch("/keys/{id:guid}", PatchKeyAsync).WithName("UpdateApiKey")
            .WithSummary("Change a key's rpm_limit, tpm_limit or daily_budget_usd (JSON merge patch; null returns to the tier's)");
        admin.MapDelete("/keys/{id:guid}", RevokeKeyAsync).WithName("RevokeApiKey")
            .WithSummary("Revoke a key; every Api instance refuses it at once and queued tasks of the key do not run");

        admin.MapGet("/agents", ListAgentDefinitions).WithName("ListAgentDefinitions").WithSummary("Every agent's full definition");
        admin.MapGet("/agents/{name}", GetAgentDefinition).WithName("GetAgentDefinition").WithSummary("An agent's full definition");
        // AgentDefinitionRules checks every field (attributes included) so one 400 lists every problem.
        admin.MapPut("/agents/{name}", PutAgentAsync).DisableValidation().WithName("PutAgent")
            .WithSummary("Create or replace an agent; every Api and Worker instance uses it within a second");
        admin.MapDelete("/agents/{name}", DeleteAgentAsync).WithName("DeleteAgent").WithSummary("Remove an agent (a configured one is hidden)");
        return app;
    }

    private static string? AlertUrlRefusal(string url, Engine.Webhooks.WebhookTargets webhooks) =>
        Uri.TryCreate(url, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https"
            ? webhooks.RefusalOf(uri)
            : "The alert_webhook_url must be an absolute http or https URL.";

    public static async Task<Results<Created<CreatedKeyResponse>, ValidationProblem>> CreateKeyAsync(
        CreateKeyRequest request, [FromServices] ApiKeyStore keys, [FromServices] IOptionsMonitor<TierOptions> tiers,
        [FromServices] Engine.Webhooks.WebhookTargets webhooks, CancellationToken cancellationToken)
    {
        if (tiers.CurrentValue.Find(request.Tier) is null)
            return TypedResults.ValidationProblem(new Dictionary<string, string[]>
            {
                ["tier"] = [$"Unknown tier '{request.Tier}'. Known tiers: {string.Join(", ", tiers.CurrentValue.Limits.Keys)}."],
            });

        if (request.AlertWebhookUrl is not null && AlertUrlRefusal(request.AlertWebhookUrl, webhooks) is { } refusal)
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["alert_webhook_url"] = [refusal] });

        var (key, secret) = await keys.CreateAsync(request.Name, request.Tier.ToLowerInvariant(), request.DailyBudgetUsd,
            Clean(request.AllowedAgents), Clean(request.AllowedTools), cancellationToken, request.RpmLimit, request.TpmLimit, request.AlertWebhookUrl);
        return TypedResults.Created($"/admin/keys/{key.Id}", new CreatedKeyResponse(
            key.Id, key.Name, key.Tier, secret, key.DailyBudgetUsd, key.AllowedAgents, key.AllowedTools, key.CreatedAt, key.WebhookSecret,
            key.RpmLimit, key.TpmLimit));
    }

    /// <summary>
    /// Changes a key's own limits, as a JSON merge patch: a field given replaces the override, <c>null</c> clears it (the
    /// tier's applies), an absent field stays. Every instance uses the new limits at once.
    /// </summary>
    public static async Task<Results<Ok<KeyView>, NotFound<ProblemDetails>, ValidationProblem>> PatchKeyAsync(Guid id,
        System.Text.Json.Nodes.JsonObject patch, [FromServices] ApiKeyStore keys, [FromServices] ApiKeyCache cache,
        [FromServices] IOptionsMonitor<TierOptions> tiers, [FromServices] Engine.Webhooks.WebhookTargets webhooks, CancellationToken cancellationToken)
    {
        var errors = new Dictionary<string, string[]>();
        foreach (var field in patch.Select(p => p.Key).Except(["rpm_limit", "tpm_limit", "daily_budget_usd", "alert_webhook_url"]))
            errors[field] = ["Only rpm_limit, tpm_limit, daily_budget_usd and alert_webhook_url can be changed."];
        string? alertUrl = null;
        if (patch.TryGetPropertyValue("alert_webhook_url", out var urlNode) && urlNode is not null
            && !(urlNode is System.Text.Json.Nodes.JsonValue u && u.TryGetValue(out alertUrl) && alertUrl.Length <= 2000 && AlertUrlRefusal(alertUrl, webhooks) is null))
            errors["alert_webhook_url"] = [alertUrl is null ? "alert_webhook_url is null or a URL." : AlertUrlRefusal(alertUrl, webhooks) ?? "At most 2,000 characters."];
        int? rpm = null, tpm = null;
        decimal? budget = null;
        if (patch.TryGetPropertyValue("rpm_limit", out var rpmNode) && !TryRead(rpmNode, 1, 1_000_000, out rpm))
            errors["rpm_limit"] = ["rpm_limit is null or a whole number from 1 to 1,000,000."];
        if (patch.TryGetPropertyValue("tpm_limit", out var tpmNode) && !TryRead(tpmNode, 1, 1_000_000_000, out tpm))
            errors["tpm_limit"] = ["tpm_limit is null or a whole number from 1 to 1,000,000,000."];
        if (patch.TryGetPropertyValue("daily_budget_usd", out var budgetNode)
            && !(budgetNode is null || budgetNode is System.Text.Json.Nodes.JsonValue v && v.TryGetValue(out decimal b) && b is >= 0 and <= 1_000_000 && (budget = b) is not null))
            errors["daily_budget_usd"] = ["daily_budget_usd is null or a number from 0 to 1,000,000."];
        if (errors.Count > 0) return TypedResults.ValidationProblem(errors);

        var key = await keys.UpdateLimitsAsync(id, k =>
        {
            if (patch.ContainsKey("rpm_limit")) k.RpmLimit = rpm;
            if (patch.ContainsKey("tpm_limit")) k.TpmLimit = tpm;
            if (patch.ContainsKey("daily_budget_usd")) k.DailyBudgetUsd = budget;
            if (patch.ContainsKey("alert_webhook_url")) k.AlertWebhookUrl = alertUrl;
        }, cancellationToken);
        if (key is null) return TypedResults.NotFound(new ProblemDetails { Status = 404, Title = "Key not found", Detail = $"No active key {id}." });
        cache.Evict(key.KeyHash);
        return TypedResults.Ok(KeyView.From(key, tiers.CurrentValue));

        static bool TryRead(System.Text.Json.Nodes.JsonNode? node, int min, int max, out int? value)
        {
            value = null;
            if (node is null) return true;
            if (node is not System.Text.Json.Nodes.JsonValue json || !json.TryGetValue(out int number) || number < min || number > max) return false;
            value = number;
            return true;
        }
    }

    public static async Task<Ok<List<KeyView>>> ListKeysAsync([FromServices] ApiKeyStore keys, [FromServices] IOptionsMonitor<TierOptions> tiers,
        CancellationToken cancellationToken) =>
        TypedResults.Ok((await keys.ListAsync(cancellationToken)).Select(k => KeyView.From(k, tiers.CurrentValue)).ToList());

    public static async Task<Results<NoContent, NotFound<ProblemDetails>>> RevokeKeyAsync(
        Guid id, [FromServices] ApiKeyStore keys, [FromServices] ApiKeyCache cache, CancellationToken cancellationToken)
    {
        if (await keys.RevokeAsync(id, cancellationToken) is not { } hash)
            return TypedResults.NotFound(new ProblemDetails { Status = 404, Title = "Key not found", Detail = $"No active key {id}." });
        // The other instances drop it on the revocation's signal; this one need not wait for its own.
        cache.Evict(hash);
        return TypedResults.NoContent();
    }

    public sealed record WebhookSecretResponse(Guid Id, string WebhookSecret);

    public static async Task<Results<Ok<WebhookSecretResponse>, NotFound<ProblemDetails>>> RotateWebhookSecretAsync(
        Guid id, [FromServices] ApiKeyStore keys, CancellationToken cancellationToken) =>
        await keys.RotateWebhookSecretAsync(id, cancellationToken) is { } secret
            ? TypedResults.Ok(new WebhookSecretResponse(id, secret))
            : TypedResults.NotFound(new ProblemDetails { Status = 404, Title = "Key not found", Detail = $"No active key {id}." });

    public sealed record AgentDefinitionView(string Name, string Source, AgentDefinition Definition);

    public static Ok<List<AgentDefinitionView>> ListAgentDefinitions([FromServices] AgentRegistry registry)
    {
        var snapshot = registry.Current;
        return TypedResults.Ok(snapshot.All.Select(a => View(a, snapshot.Sources[a.Name])).ToList());
    }

    public static Results<Ok<AgentDefinitionView>, NotFound<ProblemDetails>> GetAgentDefinition(string name, [FromServices] AgentRegistry registry)
    {
        var snapshot = registry.Current;
        return snapshot.Agents.TryGetValue(name, out var agent) ? TypedResults.Ok(View(agent, snapshot.Sources[agent.Name])) : AgentsApi.AgentNotFound(name);
    }

    public static async Task<Results<Ok<AgentDefinitionView>, ValidationProblem>> PutAgentAsync(string name, AgentDefinition definition,
        [FromServices] AgentRegistry registry, [FromServices] IOptions<LlmOptions> llm, CancellationToken cancellationToken)
    {
        name = name.ToLowerInvariant();
        var errors = AgentDefinitionRules.Check(name, definition, AgentDefinitionRules.ProviderCheck(llm.Value));
        if (errors.Count > 0) return TypedResults.ValidationProblem(errors);
        definition.Name = name;
        await registry.SaveAsync(definition, cancellationToken);
        return TypedResults.Ok(View(registry.Find(name)!, AgentSource.Database));
    }

    public static async Task<Results<NoContent, NotFound<ProblemDetails>, ProblemHttpResult>> DeleteAgentAsync(string name,
        [FromServices] AgentRegistry registry, CancellationToken cancellationToken)
    {
        if (registry.Find(name) is not { } agent) return AgentsApi.AgentNotFound(name);
        if (string.Equals(agent.Name, registry.Current.DefaultAgent, StringComparison.OrdinalIgnoreCase))
            return TypedResults.Problem(statusCode: 409, title: "Default agent",
                detail: $"'{agent.Name}' is the default agent (Agents:DefaultAgent); change the default before removing it.");
        await registry.DeleteAsync(agent.Name, cancellationToken);
        return TypedResults.NoContent();
    }

    private static AgentDefinitionView View(AgentDefinition agent, AgentSource source) =>
        new(agent.Name, source == AgentSource.Database ? "database" : "configuration", agent);

    private static string[]? Clean(string[]? names) =>
        names is null ? null : names.Where(n => !string.IsNullOrWhiteSpace(n)).Select(n => n.Trim()).Distinct().ToArray();
}
