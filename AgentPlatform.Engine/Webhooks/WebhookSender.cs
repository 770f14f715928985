using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace AgentPlatform.Engine.Webhooks;

/// <summary>
/// One signed webhook POST (see <see cref="WebhookSignature"/>) through the guarded "webhooks" HttpClient: no redirects,
/// bounded time, blocked addresses refused after DNS. A non-2xx answer throws (the caller's job retries); a refused
/// target returns false (a retry would not change the policy). The response body is never read.
/// </summary>
public sealed class WebhookSender(IHttpClientFactory httpClients, TimeProvider time, ILogger<WebhookSender> logger)
{
    public const string HttpClientName = "webhooks";

    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <returns>False when the target is refused by the address policy.</returns>
    public async Task<bool> SendAsync(string url, string secret, object payload, string deliveryId, CancellationToken cancellationToken)
    {
        var body = JsonSerializer.SerializeToUtf8Bytes(payload, Json);
        var timestamp = time.GetUtcNow().ToUnixTimeSeconds();
        using var request = new HttpRequestMessage(HttpMethod.Post, url)
        {
            Content = new ByteArrayContent(body) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } },
        };
        request.Headers.Add(WebhookSignature.TimestampHeader, timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture));
        request.Headers.Add(WebhookSignature.SignatureHeader, WebhookSignature.Sign(secret, timestamp, body));
        request.Headers.Add("X-AgentPlatform-Delivery", deliveryId);
        try
        {
            using var response = await httpClients.CreateClient(HttpClientName).SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            if (!response.IsSuccessStatusCode)
                throw new HttpRequestException($"Webhook receiver answered {(int)response.StatusCode}" +
                    ((int)response.StatusCode is >= 300 and < 400 ? " (redirects are not followed)" : ""), null, response.StatusCode);
            logger.LogInformation("Webhook {DeliveryId} delivered ({Status})", deliveryId, (int)response.StatusCode);
            return true;
        }
        catch (HttpRequestException e) when (e.InnerException is WebhookTargetRefusedException refused)
        {
            logger.LogError("Webhook {DeliveryId} refused: {Reason}", deliveryId, refused.Message);
            return false;
        }
    }
}
