using AgentPlatform.Engine.Admission;
using AgentPlatform.Engine.Agents;
using AgentPlatform.Engine.Data;
using AgentPlatform.Engine.Llm;
using AgentPlatform.Engine.Tasks;
using Hangfire;
using Hangfire.PostgreSql;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.Json;
using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using Polly;
using StackExchange.Redis;

namespace Microsoft.Extensions.Hosting;

/// <summary>Registers what the Api and the Worker share: storage, queue, agents, the LLM pipeline.</summary>
public static class EngineExtensions
{
    public const string PostgresConnectionName = "agentdb";
    public const string RedisConnectionName = "redis";
    public const string OpenAiConnectionName = "openai";
    public const string PlatformSettingsFile = "platformsettings.json";

    public static IHostApplicationBuilder AddAgentPlatformEngine(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        var configuration = builder.Configuration;

        // Platform defaults sit under every other source, so appsettings, env vars and the AppHost override them.
        // (Adding a source rebuilds the providers: set values with a configuration source, not the indexer, before this.)
        builder.Configuration.Sources.Insert(0, new JsonConfigurationSource
        {
            Path = PlatformSettingsFile,
            FileProvider = new PhysicalFileProvider(AppContext.BaseDirectory),
            Optional = false,
        });

        services.AddOptions<AgentOptions>().Bind(configuration.GetSection(AgentOptions.SectionName))
            .ValidateDataAnnotations()
            .Validate(o => o.Definitions.ContainsKey(o.DefaultAgent),
                $"{AgentOptions.SectionName}:DefaultAgent must name an agent under {AgentOptions.SectionName}:Definitions.")
            .Validate(o => o.Definitions.Values.All(a => !string.IsNullOrWhiteSpace(a.SystemPrompt) && !string.IsNullOrWhiteSpace(a.Description)),
                $"Every agent under {AgentOptions.SectionName}:Definitions needs a Description and a SystemPrompt.")
            .ValidateOnStart();
        services.AddOptions<TierOptions>().Bind(configuration.GetSection(TierOptions.SectionName)).ValidateOnStart();
        services.AddOptions<PromptInjectionOptions>().Bind(configuration.GetSection(PromptInjectionOptions.SectionName)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<PromptInjectionOptions>, PromptInjectionOptionsValidator>();
        services.AddOptions<QueueOptions>().Bind(configuration.GetSection(QueueOptions.SectionName)).ValidateOnStart();
        services.AddOptions<LlmOptions>()
            .Bind(configuration.GetSection(LlmOptions.SectionName))
            .PostConfigure(o =>
            {
                o.ApplyConnectionString(configuration.GetConnectionString(OpenAiConnectionName));
                if (string.IsNullOrWhiteSpace(o.Key)) o.Key = configuration["OPENAI_API_KEY"];
            })
            .ValidateDataAnnotations()
            .ValidateOnStart();

        // Postgres: one data source for EF Core, Hangfire and LISTEN/NOTIFY.
        var postgres = Required(configuration, PostgresConnectionName);
        services.AddSingleton(sp => new NpgsqlDataSourceBuilder(postgres)
            .UseLoggerFactory(sp.GetRequiredService<ILoggerFactory>())
            .Build());
        services.AddDbContext<AgentDbContext>((sp, options) => options.UseNpgsql(sp.GetRequiredService<NpgsqlDataSource>()));

        // Redis: connect lazily and keep retrying, so a Redis outage degrades instead of stopping the service.
        var redis = ConfigurationOptions.Parse(Required(configuration, RedisConnectionName));
        redis.AbortOnConnectFail = false;
        redis.ConnectTimeout = 2000;
        redis.SyncTimeout = redis.AsyncTimeout = 2000;
        services.AddSingleton<IConnectionMultiplexer>(_ => ConnectionMultiplexer.Connect(redis));
        // Connect at start-up, not inside the first burst of requests (which would all block on it).
        services.AddHostedService<RedisConnectionWarmup>();

        var queue = configuration.GetSection(QueueOptions.SectionName).Get<QueueOptions>() ?? new QueueOptions();
        services.AddHangfire(config => config
            .SetDataCompatibilityLevel(CompatibilityLevel.Version_180)
            .UseSimpleAssemblyNameTypeSerializer()
            .UseRecommendedSerializerSettings()
            .UsePostgreSqlStorage(options => options.UseNpgsqlConnection(postgres), new PostgreSqlStorageOptions
            {
                SchemaName = DatabaseMigrator.HangfireSchema,
                // Installed once at start-up by DatabaseMigrator, under a lock.
                PrepareSchemaIfNecessary = false,
                // LISTEN/NOTIFY wakes an idle Worker the moment a job is enqueued.
                EnableLongPolling = true,
                QueuePollInterval = queue.PollInterval,
                InvisibilityTimeout = queue.InvisibilityTimeout,
                UseSlidingInvisibilityTimeout = true,
            }));

        services.AddHttpClient(ChatClientPool.HttpClientName)
            .AddResilienceHandler("llm", (pipeline, context) =>
            {
                var llm = context.ServiceProvider.GetRequiredService<IOptions<LlmOptions>>().Value;
                pipeline.AddRetry(new HttpRetryStrategyOptions
                {
                    MaxRetryAttempts = Math.Max(1, llm.MaxRetries),
                    ShouldHandle = llm.MaxRetries == 0
                        ? _ => PredicateResult.False()
                        : new HttpRetryStrategyOptions().ShouldHandle,
                    Delay = llm.RetryBaseDelay,
                    BackoffType = DelayBackoffType.Exponential,
                    UseJitter = true,
                });
                pipeline.AddTimeout(llm.AttemptTimeout);
            });

        services.AddHttpClient(WebhookDeliveryJob.HttpClientName, client => client.Timeout = TimeSpan.FromSeconds(10));

        services.AddSingleton<ChatClientPool>();
        services.AddSingleton<AgentCatalog>();
        services.AddSingleton<TaskEvents>();
        services.AddSingleton<PromptInjectionDetector>();
        services.AddSingleton<RequestRateLimiter>();
        services.AddScoped<ApiKeyStore>();
        services.AddScoped<TaskRunner>();
        services.AddScoped<TaskQueue>();
        services.AddScoped<AgentTaskJob>();
        services.AddScoped<QueueMaintenanceJob>();
        services.AddScoped<WebhookDeliveryJob>();
        builder.AddAgentTools();
        return builder;
    }

    private static string Required(IConfiguration configuration, string name) =>
        configuration.GetConnectionString(name) is { Length: > 0 } value
            ? value
            : throw new InvalidOperationException(
                $"Connection string '{name}' is not set. Set ConnectionStrings__{name} (the AppHost injects it).");
}

internal sealed class RedisConnectionWarmup(IServiceProvider services) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) =>
        Task.Run(() => services.GetRequiredService<IConnectionMultiplexer>(), cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
