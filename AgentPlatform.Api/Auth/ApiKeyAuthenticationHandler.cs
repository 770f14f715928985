using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using AgentPlatform.Engine.Admission;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace AgentPlatform.Api.Auth;

/// <summary>Binds "Auth": the admin key, the key cache and the limit on failed attempts.</summary>
public sealed class AuthOptions
{
    public const string SectionName = "Auth";

    /// <summary>The admin key (env <c>Auth__AdminKey</c>). Required; at least 16 characters.</summary>
    public string AdminKey { get; set; } = "";

    /// <summary>
    /// How long a key lookup is reused (0 turns the cache off). A revocation evicts the key from every
    /// instance's cache at once (<see cref="ApiKeyCache"/>), so this bounds only how often Postgres is asked.
    /// </summary>
    public TimeSpan KeyCacheDuration { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>At most this many active keys are cached per instance.</summary>
    public int KeyCacheSize { get; set; } = 10_000;

    /// <summary>At most this many unknown keys (lookups that found nothing) are cached per instance.</summary>
    public int UnknownKeyCacheSize { get; set; } = 10_000;

    /// <summary>Failed attempts (unknown, revoked or malformed keys) per client address and minute before 429; 0: no limit.</summary>
    public int FailedAttemptsPerMinute { get; set; } = 20;
}

/// <summary>
/// <c>Authorization: Bearer &lt;key&gt;</c>: the admin key from configuration, or a client key
/// looked up by its hash (<see cref="ApiKeyCache"/>). Failures answer with problem+json; an address
/// with too many failures gets 429 for keys this instance does not already know.
/// </summary>
public sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> schemeOptions,
    ILoggerFactory loggerFactory,
    UrlEncoder encoder,
    IOptions<AuthOptions> authOptions,
    ApiKeyCache keys,
    FailedAuthenticationLimiter failures,
    IProblemDetailsService problems)
    : AuthenticationHandler<AuthenticationSchemeOptions>(schemeOptions, loggerFactory, encoder)
{
    public const string SchemeName = "ApiKey";

    private static readonly object ThrottledItem = new();

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        string? header = Request.Headers.Authorization;
        if (string.IsNullOrEmpty(header)) return AuthenticateResult.NoResult();

        string? secret = null;
        if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) secret = header["Bearer ".Length..].Trim();
        var hash = string.IsNullOrEmpty(secret) ? null : ApiKeyStore.Hash(secret);

        // A key this instance already knows costs nothing, whoever else fails from the same address.
        if (hash is not null && keys.FindCached(hash) is { } cached) return Success(CallerIdentity.ForKey(cached));

        // Checked before the admin key too: otherwise the admin key could be guessed without limit.
        if (failures.IsBlocked(Context, out var retryAfter))
        {
            Context.Items[ThrottledItem] = retryAfter;
            return AuthenticateResult.Fail("Too many failed authentication attempts from this address.");
        }

        if (secret is null) return Failed("The Authorization header must be 'Bearer <api key>'.");
        if (secret.Length == 0) return Failed("The API key is empty.");
        if (IsAdminKey(secret)) return Success(CallerIdentity.ForAdmin());

        var key = await keys.FindAsync(hash!, Context.RequestAborted);
        return key is null ? Failed("The API key is not valid.") : Success(CallerIdentity.ForKey(key));
    }

    private AuthenticateResult Failed(string message)
    {
        failures.RecordFailure(Context);
        return AuthenticateResult.Fail(message);
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
        if (Context.Items[ThrottledItem] is TimeSpan retryAfter)
        {
            var seconds = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds));
            Response.StatusCode = StatusCodes.Status429TooManyRequests;
            Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            await problems.WriteAsync(new ProblemDetailsContext
            {
                HttpContext = Context,
                ProblemDetails =
                {
                    Status = StatusCodes.Status429TooManyRequests,
                    Title = "Too many failed authentication attempts",
                    Detail = $"Too many requests from this address with an invalid API key; retry in {seconds} s with a valid key.",
                },
            });
            return;
        }
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
