using AgentPlatform.Engine.Billing;
using Microsoft.Extensions.DependencyInjection;

namespace Microsoft.Extensions.Hosting;

public static class UsageLedgerExtensions
{
    /// <summary>
    /// The usage ledger: recorded in memory by the metering middleware and the embedding meter, written to Postgres in
    /// batches by <see cref="UsageLedgerWriter"/>. Registered with the engine, before the services that record, so at
    /// shutdown it stops after them and writes what they recorded.
    /// </summary>
    public static IHostApplicationBuilder AddUsageLedger(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<UsageOptions>().Bind(builder.Configuration.GetSection(UsageOptions.SectionName))
            .ValidateDataAnnotations()
            .Validate(o => o.FlushInterval > TimeSpan.Zero && o.FlushInterval <= TimeSpan.FromMinutes(5),
                $"{UsageOptions.SectionName}:FlushInterval must be more than 0 and at most 5 minutes.")
            .Validate(o => o.MaxBufferedEntries >= o.MaxBatchSize,
                $"{UsageOptions.SectionName}:MaxBufferedEntries must be at least {UsageOptions.SectionName}:MaxBatchSize.")
            .ValidateOnStart();
        services.AddSingleton<UsageLedger>();
        services.AddSingleton<UsageReports>();
        services.AddHostedService<UsageLedgerWriter>();
        return builder;
    }
}
