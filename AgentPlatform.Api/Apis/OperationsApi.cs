using AgentPlatform.Api.Auth;
using AgentPlatform.Api.Health;
using Hangfire;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Scalar.AspNetCore;

namespace AgentPlatform.Api.Apis;

/// <summary>Health, API reference and the Hangfire dashboard.</summary>
public static class OperationsApi
{
    public static WebApplication MapOperationsApi(this WebApplication app)
    {
        app.MapHealthChecks("/health", new HealthCheckOptions
        {
            Predicate = check => !check.Tags.Contains("live"),
            ResponseWriter = HealthResponseWriter.WriteAsync,
            ResultStatusCodes =
            {
                [HealthStatus.Healthy] = StatusCodes.Status200OK,
                [HealthStatus.Degraded] = StatusCodes.Status200OK,
                [HealthStatus.Unhealthy] = StatusCodes.Status503ServiceUnavailable,
            },
        });

        app.MapOpenApi();
        app.MapScalarApiReference("/docs", options => options.WithTitle("AgentPlatform API"));

        // Admin only; the dashboard's own filter list is emptied so the endpoint policy decides.
        app.MapHangfireDashboard("/hangfire", new DashboardOptions { Authorization = [], DashboardTitle = "AgentPlatform jobs" })
            .RequireAuthorization(CallerIdentity.AdminPolicy);

        return app;
    }
}
