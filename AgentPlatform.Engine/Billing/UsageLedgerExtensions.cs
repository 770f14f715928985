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
        const string section = UsageOptions.SectionName;
        services.AddOptions<UsageOptions>().Bind(builder.Configuration.GetSection(section))
            .Validate(o => o.FlushInterval > TimeSpan.Zero && o.FlushInterval <= TimeSpan.FromMinutes(5),
                $"{section}:FlushInterval must be more than 0 and at most 5 minutes.")
            .Validate(o => o.MaxBatchSize is >= 1 and <= 100_000, $"{section}:MaxBatchSize must be between 1 and 100000.")
            .Validate(o => o.MaxBufferedEntries >= o.MaxBatchSize && o.MaxBufferedEntries <= 10_000_000,
                $"{section}:MaxBufferedEntries must be at least {section}:MaxBatchSize and at most 10000000.")
            .Validate(o => o.MaxRangeDays is >= 1 and <= 3_660, $"{section}:MaxRangeDays must be between 1 and 3660.")
            .ValidateOnStart();
        services.AddSingleton<UsageLedger>();
        services.AddSingleton<UsageReports>();
        services.AddHostedService<UsageLedgerWriter>();
        return builder;
    }
}
