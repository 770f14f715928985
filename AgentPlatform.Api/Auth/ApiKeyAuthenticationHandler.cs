using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using AgentPlatform.Engine.Admission;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;

namespace AgentPlatform.Api.Auth;

/// <summary>Binds "Auth": the admin key and how long a key lookup is cached.</summary>
public sealed class AuthOptions
{
    public const string SectionName = "Auth";

    /// <summary>The admin key (env <c>Auth__AdminKey</c>). Required; at least 16 characters.</summary>
    public string AdminKey { get; set; } = "";

    /// <summary>How long a key lookup is reused; a revoked key stops working within this time.</summary>
    public TimeSpan KeyCacheDuration { get; set; } = TimeSpan.FromSeconds(5);
}

/// <summary>
/// <c>Authorization: Bearer &lt;key&gt;</c>: the admin key from configuration, or a client key
/// looked up by its hash in Postgres. Failures answer with problem+json.
/// </summary>
public sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> schemeOptions,
    ILoggerFactory loggerFactory,
    UrlEncoder encoder,
    IOptions<AuthOptions> authOptions,
    IMemoryCache cache,
    IServiceScopeFactory scopes,
    IProblemDetailsService problems)
    : AuthenticationHandler<AuthenticationSchemeOptions>(schemeOptions, loggerFactory, encoder)
{
    public const string SchemeName = "ApiKey";

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        string? header = Request.Headers.Authorization;
        if (string.IsNullOrEmpty(header)) return AuthenticateResult.NoResult();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            return AuthenticateResult.Fail("The Authorization header must be 'Bearer <api key>'.");

        var secret = header["Bearer ".Length..].Trim();
        if (secret.Length == 0) return AuthenticateResult.Fail("The API key is empty.");

        if (IsAdminKey(secret)) return Success(CallerIdentity.ForAdmin());

        var key = await FindKeyAsync(secret);
        return key is null
            ? AuthenticateResult.Fail("The API key is not valid.")
            : Success(CallerIdentity.ForKey(key));
    }

    private async Task<ApiKey?> FindKeyAsync(string secret)
    {
        var cacheFor = authOptions.Value.KeyCacheDuration;
        if (cacheFor <= TimeSpan.Zero) return await LoadAsync();
        return await cache.GetOrCreateAsync($"apikey:{ApiKeyStore.Hash(secret)}", entry =>
        {
            entry.AbsoluteExpirationRelativeToNow = cacheFor;
            return LoadAsync();
        });

        async Task<ApiKey?> LoadAsync()
        {
            await using var scope = scopes.CreateAsyncScope();
            return await scope.ServiceProvider.GetRequiredService<ApiKeyStore>().FindActiveAsync(secret, Context.RequestAborted);
        }
    }

    private AuthenticateResult Success(ClaimsPrincipal principal) =>
        AuthenticateResult.Success(new AuthenticationTicket(principal, SchemeName));

    private bool IsAdminKey(string secret)
    {
        var admin = authOptions.Value.AdminKey;
        return admin.Length > 0 && CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes(admin));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        var result = await HandleAuthenticateOnceSafeAsync();
        Response.StatusCode = StatusCodes.Status401Unauthorized;
        Response.Headers.WWWAuthenticate = "Bearer";
        await problems.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = Context,
            ProblemDetails =
            {
                Status = StatusCodes.Status401Unauthorized,
                Title = "Unauthorized",
                Detail = result.Failure?.Message ?? "Send 'Authorization: Bearer <api key>'.",
            },
        });
    }

    protected override async Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        Response.StatusCode = StatusCodes.Status403Forbidden;
        await problems.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = Context,
            ProblemDetails =
            {
                Status = StatusCodes.Status403Forbidden,
                Title = "Forbidden",
                Detail = "This API key may not use this endpoint.",
            },
        });
    }
}
