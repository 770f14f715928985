using System.ClientModel;
using System.ClientModel.Primitives;
using System.Collections.Concurrent;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OpenAI;

namespace AgentPlatform.Engine.Llm;

/// <summary>
/// One Microsoft.Extensions.AI pipeline per model, built once and shared:
/// metering → OpenTelemetry (GenAI conventions) → logging → provider (or the offline model).
/// Retries with backoff live in the "llm" HttpClient's resilience handler.
/// </summary>
public sealed class ChatClientPool(
    IOptions<LlmOptions> options, IHttpClientFactory httpClientFactory, ILoggerFactory loggerFactory) : IDisposable
{
    public const string HttpClientName = "llm";

    private readonly ConcurrentDictionary<string, IChatClient> _clients = new(StringComparer.OrdinalIgnoreCase);

    public bool IsOffline => options.Value.IsOffline;

    /// <summary>The model an agent actually uses: its own, else the provider's default, else offline.</summary>
    public string ModelFor(string? agentModel) =>
        IsOffline ? LlmOptions.OfflineModel : string.IsNullOrWhiteSpace(agentModel) ? options.Value.DefaultModel : agentModel;

    public IChatClient For(string model) => _clients.GetOrAdd(model, Build);

    private IChatClient Build(string model)
    {
        var provider = IsOffline ? new OfflineChatClient() : CreateProviderClient(model);
        return new ChatClientBuilder(provider)
            .UseMetering(options.Value, model)
            .UseOpenTelemetry(loggerFactory, configure: otel => otel.EnableSensitiveData = false)
            .UseLogging(loggerFactory)
            .Build();
    }

    private IChatClient CreateProviderClient(string model)
    {
        var settings = options.Value;
        var client = new OpenAIClient(
            new ApiKeyCredential(string.IsNullOrWhiteSpace(settings.Key) ? "unused" : settings.Key),
            new OpenAIClientOptions
            {
                Endpoint = new Uri(string.IsNullOrWhiteSpace(settings.Endpoint) ? LlmOptions.DefaultEndpoint : settings.Endpoint),
                Transport = new HttpClientPipelineTransport(httpClientFactory.CreateClient(HttpClientName)),
                // Retries belong to the HttpClient's Polly pipeline; a second retry layer would multiply attempts.
                RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
                NetworkTimeout = Timeout.InfiniteTimeSpan,
            });
        return client.GetChatClient(model).AsIChatClient();
    }

    public void Dispose()
    {
        foreach (var client in _clients.Values) client.Dispose();
    }
}
