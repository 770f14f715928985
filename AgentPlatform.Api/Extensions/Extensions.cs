using System.Text.Json;
using System.Text.Json.Serialization;
using AgentPlatform.Api.Admission;
using AgentPlatform.Api.Auth;
using AgentPlatform.Api.Health;
using AgentPlatform.Engine.Billing;
using AgentPlatform.Engine.Data;
using AgentPlatform.Engine.Tasks;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace AgentPlatform.Api.Extensions;

/// <summary>Binds "Api": limits of the HTTP surface.</summary>
public sealed class ApiOptions
{
    public const string SectionName = "Api";

    /// <summary>Largest request body accepted; larger ones get 413.</summary>
    public long MaxRequestBodyBytes { get; set; } = 1_048_576;
}

public static class Extensions
{
    public static IHostApplicationBuilder AddApplicationServices(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;

        services.AddOptions<ApiOptions>().Bind(builder.Configuration.GetSection(ApiOptions.SectionName)).ValidateOnStart();
        services.AddOptions<AuthOptions>().Bind(builder.Configuration.GetSection(AuthOptions.SectionName))
            .Validate(o => o.AdminKey.Length >= 16, "Auth:AdminKey (env Auth__AdminKey) must be set to at least 16 characters.")
            .Validate(o => o.KeyCacheDuration >= TimeSpan.Zero, "Auth:KeyCacheDuration must not be negative.")
            .Validate(o => o.KeyCacheSize >= 1, "Auth:KeyCacheSize must be at least 1.")
            .Validate(o => o.UnknownKeyCacheSize >= 1, "Auth:UnknownKeyCacheSize must be at least 1.")
            .Validate(o => o.FailedAttemptsPerMinute >= 0, "Auth:FailedAttemptsPerMinute must be 0 (no limit) or more.")
            .ValidateOnStart();
        services.AddSingleton<ApiKeyCache>();
        services.AddHostedService(sp => sp.GetRequiredService<ApiKeyCache>());
        services.AddSingleton<FailedAuthenticationLimiter>();
        var maxBody = builder.Configuration.GetSection(ApiOptions.SectionName).Get<ApiOptions>()?.MaxRequestBodyBytes
            ?? new ApiOptions().MaxRequestBodyBytes;
        services.Configure<Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions>(k => k.Limits.MaxRequestBodySize = maxBody);

        services.Configure<JsonOptions>(options => ConfigureJson(options.SerializerOptions));
        // Bad input reaches ApiExceptionHandler, which names the field, instead of an empty 400.
        services.Configure<RouteHandlerOptions>(options => options.ThrowOnBadRequest = true);
        // Before AddProblemDetails: the first writer that can write a problem writes it, and /v1 answers in OpenAI's shape.
        services.AddSingleton<IProblemDetailsWriter, OpenAiErrorWriter>();
        services.AddProblemDetails(options => options.CustomizeProblemDetails = context =>
        {
            // Validation names C# members ("Task"); clients sent snake_case JSON ("task").
            if (context.ProblemDetails is HttpValidationProblemDetails validation)
            {
                var errors = validation.Errors.ToDictionary(e => JsonFieldName(e.Key), e => e.Value);
                validation.Errors.Clear();
                foreach (var (key, value) in errors) validation.Errors[key] = value;
            }
        });
        services.AddExceptionHandler<ApiExceptionHandler>();
        services.AddValidation();
        services.AddOpenApi();
        services.AddMemoryCache();

        services.AddAuthentication(ApiKeyAuthenticationHandler.SchemeName)
            .AddScheme<Microsoft.AspNetCore.Authentication.AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(
                ApiKeyAuthenticationHandler.SchemeName, null);
        services.AddAuthorizationBuilder()
            .SetDefaultPolicy(new AuthorizationPolicyBuilder()
                .RequireAuthenticatedUser()
                .AddRequirements(new ConfiguredTierRequirement())
                .Build())
            .AddPolicy(CallerIdentity.AdminPolicy, policy => policy.RequireRole(CallerIdentity.AdminRole))
            .AddPolicy(Microsoft.Extensions.Hosting.Extensions.MetricsPolicy, policy => policy.RequireRole(CallerIdentity.AdminRole));
        services.AddSingleton<IAuthorizationHandler, ConfiguredTierHandler>();
        services.AddSingleton<IAuthorizationMiddlewareResultHandler, ProblemAuthorizationResultHandler>();

        // Migrations and the stored agents load in the background: the Api answers /health while Postgres is not there yet.
        services.AddBackgroundEnginePreparation();
        services.AddHostedService<QueueDepthGauge>();
        services.AddHostedService<AgentPlatform.Engine.Routing.MiniLmWarmup>();
        services.AddHostedService<AgentPlatform.Engine.Conversations.ActiveConversations>();
        services.AddScoped<Apis.AgentTaskApi.TaskServices>();
        services.AddSingleton<RateLimitFilter>();
        services.AddSingleton<PromptInjectionFilter>();
        services.AddSingleton<AgentPlatform.Engine.Llm.ClientEmbeddings>();

        // postgres, redis and qdrant come from the client integrations (AddAgentPlatformEngine).
        services.AddHealthChecks()
            .AddCheck<StartupHealthCheck>("startup", HealthStatus.Unhealthy, ["ready"])
            .AddCheck<LlmHealthCheck>("llm", HealthStatus.Degraded, ["ready"])
            .AddCheck<WorkerHealthCheck>("worker", HealthStatus.Degraded, ["ready"], TimeSpan.FromSeconds(3));
        return builder;
    }

    public static void ConfigureJson(JsonSerializerOptions json)
    {
        json.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
        json.DictionaryKeyPolicy = null;
        json.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower, allowIntegerValues: false));
    }

    /// <summary>"Context.Items[0]" → "context.items[0]"; names that are already JSON names stay as they are.</summary>
    internal static string JsonFieldName(string memberPath) => string.Join('.', memberPath.Split('.').Select(segment =>
    {
        var bracket = segment.IndexOf('[');
        var name = bracket < 0 ? segment : segment[..bracket];
        return (name.Contains('-') ? name : JsonNamingPolicy.SnakeCaseLower.ConvertName(name)) + (bracket < 0 ? "" : segment[bracket..]);
    }));

    public static WebApplication UseApplicationPipeline(this WebApplication app)
    {
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        // Until the schema is in place, everything but the probes and the API reference gets a clear 503.
        var readiness = app.Services.GetRequiredService<EngineReadiness>();
        app.Use(async (context, next) =>
        {
            var path = context.Request.Path;
            if (readiness.IsReady || path.StartsWithSegments("/health") || path.StartsWithSegments("/alive")
                || path.StartsWithSegments("/metrics") || path.StartsWithSegments("/docs") || path.StartsWithSegments("/openapi"))
            {
                await next(context);
                return;
            }
            context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            context.Response.Headers.RetryAfter = "5";
            await context.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
            {
                HttpContext = context,
                ProblemDetails =
                {
                    Status = StatusCodes.Status503ServiceUnavailable,
                    Title = "Starting",
                    Detail = "The service is waiting for Postgres to prepare its schema. Retry shortly; /health says what is missing.",
                },
            });
        });
        app.UseAuthentication();
        // Every log line of an authenticated request carries the key's id (never the key itself), and every billable call
        // it makes (routing and memory embeddings, /v1/embeddings, its sync task) goes to the key's usage.
        app.Use(async (context, next) =>
        {
            var keyId = context.User.FindFirst("key_id")?.Value;
            if (keyId is null)
            {
                await next(context);
                return;
            }
            var logger = context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("AgentPlatform.Api");
            using (logger.BeginScope(new Dictionary<string, object> { ["ApiKeyId"] = keyId }))
            using (UsageScope.Begin(Guid.Parse(keyId)))
            {
                await next(context);
            }
        });
        app.UseAuthorization();
        return app;
    }
}
