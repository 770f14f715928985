using AgentPlatform.Api.Extensions;
using AgentPlatform.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace AgentPlatform.Tests.Operations;

[Collection(PlatformCollection.Name)]
public sealed class CancellationStatusTests(PlatformFixture platform)
{
    [Theory]
    [InlineData(true, 499)]
    [InlineData(false, 503)]
    public async Task A_cancellation_is_499_only_when_the_client_went_away(bool clientAborted, int expected)
    {
        await using var scope = platform.Api.Services.CreateAsyncScope();
        var handler = ActivatorUtilities.CreateInstance<ApiExceptionHandler>(scope.ServiceProvider);
        using var aborted = new CancellationTokenSource();
        if (clientAborted) await aborted.CancelAsync();
        var http = new DefaultHttpContext { RequestServices = scope.ServiceProvider, RequestAborted = aborted.Token };
        http.Response.Body = new MemoryStream();

        Assert.True(await handler.TryHandleAsync(http, new OperationCanceledException(), CancellationToken.None));

        Assert.Equal(expected, http.Response.StatusCode);
    }
}
