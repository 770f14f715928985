using AgentPlatform.Engine.Admission;
using AgentPlatform.Engine.Agents;
using AgentPlatform.Engine.Conversations;
using AgentPlatform.Engine.Data;
using AgentPlatform.Engine.Llm;
using AgentPlatform.Engine.Execution;
using AgentPlatform.Engine.Routing;
using AgentPlatform.Engine.Tasks;
using AgentPlatform.Engine.Webhooks;
using AgentPlatform.Engine.Infrastructure;
using Microsoft.Extensions.AI;
using Hangfire;
using Hangfire.PostgreSql;
using Hangfire.Redis.StackExchange;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.Json;
using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
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
    public const string QdrantConnectionName = "qdrant";
    public const string PlatformSettingsFile = "platformsettings.json";
    /// <summary>The DI key of Hangfire's own Redis connection (when <see cref="QueueOptions.Storage"/> is Redis).</summary>
    public const string HangfireRedisKey = "hangfire";
    /// <summary>Hangfire's keys in Redis; the braces keep them in one cluster slot, as its transactions need.</summary>
    public const string HangfireRedisPrefix = "{hangfire}:";

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
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<AgentOptions>>(sp => new AgentOptionsValidator(sp.GetRequiredService<IOptions<LlmOptions>>()));
        services.AddOptions<TierOptions>().Bind(configuration.GetSection(TierOptions.SectionName)).ValidateOnStart();
        services.AddOptions<PromptInjectionOptions>().Bind(configuration.GetSection(PromptInjectionOptions.SectionName)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<PromptInjectionOptions>, PromptInjectionOptionsValidator>();
        services.AddOptions<RouterOptions>().Bind(configuration.GetSection(RouterOptions.SectionName))
            .ValidateDataAnnotations()
            .Validate(o => o.FallbackEmbedding != RouterEmbedding.Provider, "Router:FallbackEmbedding is a local mode: hashed or minilm.")
            .ValidateOnStart();
        services.AddOptions<QueueOptions>().Bind(configuration.GetSection(QueueOptions.SectionName)).ValidateOnStart();
        services.AddOptions<ConversationOptions>().Bind(configuration.GetSection(ConversationOptions.SectionName))
            .ValidateDataAnnotations()
            .Validate(o => o.HotTtl >= TimeSpan.FromMinutes(1), $"{ConversationOptions.SectionName}:HotTtl must be at least a minute.")
            .ValidateOnStart();
        services.AddOptions<LlmOptions>()
            .Bind(configuration.GetSection(LlmOptions.SectionName))
            .PostConfigure(o =>
            {
                o.ApplyProviderSettings(configuration);
            })
            .ValidateDataAnnotations()
            .ValidateOnStart();

        // Postgres: one data source for EF Core, Hangfire's schema installer and LISTEN/NOTIFY. EF Core comes
        // through the Aspire client integration's enrich form (it needs our data source): health check, traces
        // and metrics. Its retrying execution strategy stays off: our writes are conditional updates that the
        // callers retry themselves, and a blind re-run of SaveChanges after a lost acknowledgement could apply twice.
        var postgres = WithPoolLimit(Required(configuration, PostgresConnectionName));
        services.AddNpgsqlDataSource(postgres);
        // Pooled: every request resolves a context (the task services need one) though most sync requests never query; a
        // pooled one is reset, not built, per request.
        services.AddDbContextPool<AgentDbContext>((sp, options) => options.UseNpgsql(sp.GetRequiredService<NpgsqlDataSource>()));
        builder.EnrichNpgsqlDbContext<AgentDbContext>(settings => settings.DisableRetry = true);

        // Redis through the Aspire client integration (health check, traces). Connect lazily and keep
        // retrying, so a Redis outage degrades instead of stopping the service.
        Required(configuration, RedisConnectionName);
        builder.AddRedisClient(RedisConnectionName, configureOptions: redis =>
        {
            redis.AbortOnConnectFail = false;
            // While Redis is away, commands fail at once (fast 503s, routing on its last figures) instead of queueing
            // in the client's backlog until the 2 s timeout: a Redis outage must not stall requests.
            redis.BacklogPolicy = BacklogPolicy.FailFast;
            redis.ConnectTimeout = 2000;
            redis.SyncTimeout = redis.AsyncTimeout = 2000;
            redis.SocketManager = RedisSockets.For(configuration.GetValue("Redis:SocketThreads", 0));
        });
        // Connect at start-up, not inside the first burst of requests (which would all block on it).
        services.AddHostedService<RedisConnectionWarmup>();
        services.AddHostedService<IdleMemoryTrim>();
        // Registered before what sends writes behind a response, so it stops after them (hosted services stop in reverse).
        services.AddSingleton<RedisWritesBehind>();
        services.AddHostedService(sp => sp.GetRequiredService<RedisWritesBehind>());

        // Qdrant (gRPC), when configured: vector search for the semantic cache and long-term memory.
        builder.AddQdrantClient(QdrantConnectionName);

        // The client integrations name their checks after their types; /health speaks of "postgres" and "redis",
        // and a check during an outage must answer within seconds, not after Npgsql's 15 s connect timeout.
        services.PostConfigure<HealthCheckServiceOptions>(options =>
        {
            foreach (var check in options.Registrations)
            {
                check.Name = check.Name switch
                {
                    nameof(AgentDbContext) => "postgres",
                    "StackExchange.Redis" => "redis",
                    _ => check.Name,
                };
                if (check.Timeout == Timeout.InfiniteTimeSpan) check.Timeout = TimeSpan.FromSeconds(3);
            }
        });

        var queue = configuration.GetSection(QueueOptions.SectionName).Get<QueueOptions>() ?? new QueueOptions();
        if (queue.Storage == QueueStorage.Redis)
        {
            // Hangfire gets a connection of its own: the instrumented shared one would trace every fetch and heartbeat, and a
            // blocking fetch must not queue behind request traffic. It connects lazily and keeps retrying, like the shared one.
            var redis = Required(configuration, RedisConnectionName);
            services.AddKeyedSingleton<IConnectionMultiplexer>(HangfireRedisKey, (_, _) =>
            {
                var options = ConfigurationOptions.Parse(redis);
                options.AbortOnConnectFail = false;
                options.ClientName = "hangfire";
                // While Redis is away, enqueueing fails at once (the task is stored; the sweep enqueues it) instead of waiting.
                options.BacklogPolicy = BacklogPolicy.FailFast;
                options.ConnectTimeout = 2000;
                options.SyncTimeout = options.AsyncTimeout = 2000;
                return ConnectionMultiplexer.Connect(options);
            });
        }
        services.AddHangfire((sp, config) =>
        {
            config.SetDataCompatibilityLevel(CompatibilityLevel.Version_180)
                .UseSimpleAssemblyNameTypeSerializer()
                .UseRecommendedSerializerSettings();
            // Two of Hangfire's default filters cost every job synchronous storage round trips and do nothing here: the
            // culture filter reads the job's two culture parameters before it runs (no task depends on the thread's
            // culture), and continuations support reads the job's continuations at each state change (no job has any).
            GlobalJobFilters.Filters.Remove<CaptureCultureAttribute>();
            GlobalJobFilters.Filters.Remove<ContinuationsSupportAttribute>();
            if (queue.Storage == QueueStorage.Redis)
            {
                config.UseRedisStorage(sp.GetRequiredKeyedService<IConnectionMultiplexer>(HangfireRedisKey), new RedisStorageOptions
                {
                    Prefix = HangfireRedisPrefix,
                    // Pub/sub wakes a waiting Worker when a job is enqueued; a lost message is covered by this poll.
                    FetchTimeout = queue.PollInterval,
                    // A job fetched by a Worker that died goes back to the queue when its server is gone, or after this.
                    InvisibilityTimeout = queue.InvisibilityTimeout,
                }).WithJobExpirationTimeout(queue.FinishedJobRetention);
                return;
            }
            config.UsePostgreSqlStorage(options => options.UseNpgsqlConnection(postgres), new PostgreSqlStorageOptions
            {
                SchemaName = DatabaseMigrator.HangfireSchema,
                // Installed once at start-up by DatabaseMigrator, under a lock.
                PrepareSchemaIfNecessary = false,
                // LISTEN/NOTIFY wakes an idle Worker the moment a job is enqueued.
                EnableLongPolling = true,
                QueuePollInterval = queue.PollInterval,
                InvisibilityTimeout = queue.InvisibilityTimeout,
                UseSlidingInvisibilityTimeout = true,
                // A Worker killed while holding a job's state lock leaves the lock behind; any Worker fetching that job
                // then waits for it to expire (10 minutes by default) with the job fetched but not started.
                DistributedLockTimeout = queue.DistributedLockTimeout,
            }).WithJobExpirationTimeout(queue.FinishedJobRetention);
        });

        // One HttpClient per provider: key rotation inside a Polly retry, so each attempt may use another key.
        var llmSettings = configuration.GetSection(LlmOptions.SectionName).Get<LlmOptions>() ?? new LlmOptions();
        llmSettings.ApplyProviderSettings(configuration);
        foreach (var (name, provider) in llmSettings.AllProviders())
        {
            var keys = new ProviderKeyPool(provider.AllKeys.Length > 0 ? provider.AllKeys : ["no-key"],
                llmSettings.KeyRestPeriod, TimeProvider.System);
            // HttpClient.Timeout (100 s by default) would wrap the whole retry pipeline and cut it short; the pipeline's
            // total and per-attempt timeouts are the limits instead.
            var http = services.AddHttpClient(ChatClientPool.HttpClientPrefix + name, client => client.Timeout = Timeout.InfiniteTimeSpan);
            http.AddResilienceHandler("llm", (pipeline, context) =>
                {
                    var llm = context.ServiceProvider.GetRequiredService<IOptions<LlmOptions>>().Value;
                    pipeline.AddTimeout(llm.TotalTimeout);
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
            http.AddHttpMessageHandler(() => new ProviderKeyRotationHandler(keys));
        }

        // Webhooks go to tenants' URLs: every connection is checked after DNS (WebhookTargets), no redirects,
        // bounded time and headers, and none of the default handlers (service discovery would map names to our own services).
        services.AddOptions<WebhookOptions>().Bind(configuration.GetSection(WebhookOptions.SectionName))
            .Validate(o => o.Timeout > TimeSpan.Zero && o.Timeout <= TimeSpan.FromMinutes(5),
                $"{WebhookOptions.SectionName}:Timeout must be between 0 and 5 minutes.")
            .ValidateOnStart();
        services.AddSingleton<WebhookTargets>();
        services.AddHttpClient(WebhookDeliveryJob.HttpClientName, (sp, client) =>
                client.Timeout = sp.GetRequiredService<IOptions<WebhookOptions>>().Value.Timeout)
            .ConfigurePrimaryHttpMessageHandler(sp => new SocketsHttpHandler
            {
                ConnectCallback = sp.GetRequiredService<WebhookTargets>().ConnectAsync,
                AllowAutoRedirect = false,
                UseProxy = false,
                UseCookies = false,
                ConnectTimeout = TimeSpan.FromSeconds(5),
                MaxResponseHeadersLength = 16,
                MaxResponseDrainSize = 0,
            })
            .ConfigureAdditionalHttpMessageHandlers((handlers, _) => handlers.Clear());

        services.AddSingleton(TimeProvider.System);
        services.AddSingleton<EngineReadiness>();
        services.AddSingleton<ChatClientPool>();
        services.AddSingleton<CircuitBreakers>();
        services.AddSingleton<AgentClients>();
        services.AddSingleton<AgentRegistry>();
        services.AddHostedService(sp => sp.GetRequiredService<AgentRegistry>());
        services.AddSingleton<AgentStats>();
        services.AddSingleton<MiniLmEmbeddingGenerator>();
        services.AddSingleton<RoutingEmbeddings>();
        foreach (var name in new[] { RoutingEmbeddings.PipelineName, RoutingEmbeddings.StoredPipelineName })
            services.AddResiliencePipeline(name, (pipeline, context) =>
                RoutingEmbeddings.Configure(pipeline, context.ServiceProvider.GetRequiredService<IOptions<RouterOptions>>().Value));
        services.AddSingleton<RoutingTieBreaker>();
        services.AddSingleton<AgentRouter>();
        services.AddSingleton<AgentInvoker>();
        services.AddSingleton<TaskExecutor>();
        services.AddSingleton<TaskEvents>();
        // Both services listen: the Api wakes long-polls with it, and a running task (sync or async) hears its cancel.
        services.AddHostedService(sp => sp.GetRequiredService<TaskEvents>());
        services.AddSingleton<TaskLeases>();
        services.AddSingleton<TaskCallers>();
        services.AddSingleton<TaskResults>();
        services.AddHostedService(sp => sp.GetRequiredService<TaskCallers>());
        services.AddSingleton<PromptInjectionDetector>();
        services.AddSingleton<RequestRateLimiter>();
        // Budget counters Redis lost are rebuilt from the ledger: every billable call, of every process.
        services.AddSingleton<ISpendHistory>(sp => sp.GetRequiredService<AgentPlatform.Engine.Billing.UsageLedger>());
        services.AddSingleton<SpendGate>();
        services.AddSingleton<IBudgetAlerts, QueuedBudgetAlerts>();
        services.AddScoped<BudgetAlertJob>();
        services.AddSingleton<WebhookSender>();
        services.AddOptions<BudgetOptions>().Bind(configuration.GetSection(BudgetOptions.SectionName))
            .Validate(o => o.DegradeAt is null or (> 0 and <= 1), $"{BudgetOptions.SectionName}:DegradeAt must be between 0 and 1 (or unset).")
            .Validate(o => o.AlertThresholds.All(t => t is > 0 and <= 1000), $"{BudgetOptions.SectionName}:AlertThresholds are percentages from 1 to 1000.")
            .ValidateOnStart();
        services.AddScoped<ApiKeyStore>();
        services.AddScoped<TaskRunner>();
        services.AddScoped<ConversationStore>();
        services.AddScoped<ConversationService>();
        services.AddSingleton<TaskQueue>();
        services.AddSingleton<JobIdWriter>();
        services.AddHostedService(sp => sp.GetRequiredService<JobIdWriter>());
        services.AddScoped<AgentTaskJob>();
        services.AddScoped<QueueMaintenanceJob>();
        services.AddScoped<WebhookDeliveryJob>();
        builder.AddAgentTools();
        builder.AddLongTermMemory();
        builder.AddUsageLedger();
        // Like the ledger: registered before the services that finish sync tasks, so at shutdown it stops after them.
        services.AddSingleton<TaskWriteBehind>();
        services.AddHostedService(sp => sp.GetRequiredService<TaskWriteBehind>());
        builder.AddResponseCache();
        return builder;
    }

    /// <summary>
    /// Npgsql's default pool (100 connections) in each of the Api, the Worker and Hangfire's storage would pass Postgres's
    /// default max_connections (100) under a burst, and a request then fails with "too many clients" instead of waiting a
    /// moment for a pooled connection. Unless the connection string sets a pool size, each pool keeps to
    /// <see cref="DefaultMaxPoolSize"/>: the request paths hold a connection only for a statement or two.
    /// </summary>
    private static string WithPoolLimit(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        if (builder.MaxPoolSize != new NpgsqlConnectionStringBuilder().MaxPoolSize) return connectionString;
        builder.MaxPoolSize = DefaultMaxPoolSize;
        return builder.ConnectionString;
    }

    public const int DefaultMaxPoolSize = 30;

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

/// <summary>Stops start-up on a configured agent that breaks <see cref="AgentDefinitionRules"/>, naming the setting.</summary>
internal sealed class AgentOptionsValidator(IOptions<LlmOptions> llm) : IValidateOptions<AgentOptions>
{
    public ValidateOptionsResult Validate(string? name, AgentOptions options)
    {
        var failures = options.Definitions.SelectMany(agent =>
            AgentDefinitionRules.Check(agent.Key, agent.Value, AgentDefinitionRules.ProviderCheck(llm.Value))
                .Select(e => $"{AgentOptions.SectionName}:Definitions:{agent.Key}:{e.Key}: {string.Join(" ", e.Value)}")).ToList();
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}

/// <summary>
/// Where StackExchange.Redis reads replies and flushes writes (Redis:SocketThreads). 0, the default: the .NET thread pool.
/// The library's default, ten dedicated threads handing work to each other through one lock, took a fifth of the Api's CPU
/// under load on two cores (profiled: Monitor contention and wake-ups in DedicatedThreadPoolPipeScheduler). Dedicated threads
/// exist for callers blocking the pool with synchronous Redis calls: there are none on this connection (Hangfire's
/// synchronous storage calls go through its own connection, which keeps the library's default).
/// N &gt; 0: N dedicated threads of our own.
/// </summary>
internal static class RedisSockets
{
    private static SocketManager? _dedicated;

    public static SocketManager For(int threads) => threads <= 0
        ? SocketManager.ThreadPool
        : LazyInitializer.EnsureInitialized(ref _dedicated, () => new SocketManager("AgentPlatform", threads));
}
