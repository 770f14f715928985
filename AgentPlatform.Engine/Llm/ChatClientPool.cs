using System.ClientModel;
using System.ClientModel.Primitives;
using System.Collections.Concurrent;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OpenAI;

namespace AgentPlatform.Engine.Llm;

/// <summary>
/// One Microsoft.Extensions.AI client per (provider, model), built once and shared:
/// OpenTelemetry (GenAI conventions) → logging → the provider's OpenAI client (or the offline model).
/// Retries with backoff and key rotation live in the provider's HttpClient ("llm:{provider}").
/// </summary>
public sealed class ChatClientPool(
    IOptions<LlmOptions> options, IHttpClientFactory httpClientFactory, ILoggerFactory loggerFactory) : IDisposable
{
    public const string HttpClientPrefix = "llm:";

    private readonly ConcurrentDictionary<(string Provider, string Model), IChatClient> _clients = new();

    public bool IsOffline => options.Value.IsOffline;

    /// <summary>A model option as it really runs: on the default provider while offline it is the offline model.</summary>
    public (string Provider, string Model) Resolve(string provider, string? model)
    {
        if (string.Equals(provider, LlmOptions.DefaultProvider, StringComparison.OrdinalIgnoreCase) && IsOffline)
            return (LlmOptions.DefaultProvider, LlmOptions.OfflineModel);
        return (provider, string.IsNullOrWhiteSpace(model) ? options.Value.DefaultModel : model);
    }

    public IChatClient For(string provider, string model) => _clients.GetOrAdd((provider, model), Build);

    private IChatClient Build((string Provider, string Model) key)
    {
        var provider = key.Model == LlmOptions.OfflineModel
            ? (IChatClient)new OfflineChatClient()
            : new PreparedToolsChatClient(CreateProviderClient(key.Provider, key.Model));
        return new ChatClientBuilder(provider)
            .UseOpenTelemetry(loggerFactory, configure: otel => otel.EnableSensitiveData = false)
            .UseLogging(loggerFactory)
            .Build();
    }

    private IChatClient CreateProviderClient(string provider, string model)
    {
        if (!options.Value.AllProviders().TryGetValue(provider, out var settings))
            throw new InvalidOperationException($"LLM provider '{provider}' is not configured (Llm:Providers:{provider}).");
        var client = new OpenAIClient(
            // The real key is set per request by ProviderKeyRotationHandler.
            new ApiKeyCredential("rotated-per-request"),
            new OpenAIClientOptions
            {
                Endpoint = new Uri(string.IsNullOrWhiteSpace(settings.Endpoint) ? LlmOptions.DefaultEndpoint : settings.Endpoint),
                Transport = new HttpClientPipelineTransport(httpClientFactory.CreateClient(HttpClientPrefix + provider)),
                // Retries belong to the HttpClient's Polly pipeline; a second retry layer would multiply attempts.
                RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
                NetworkTimeout = Timeout.InfiniteTimeSpan,
            });
        return client.GetChatClient(model).AsIChatClient();
    }

    /// <summary>Embeddings at the default provider, for the router (null while offline).</summary>
    public IEmbeddingGenerator<string, Embedding<float>>? CreateEmbeddingGenerator()
    {
        if (IsOffline || !options.Value.UseProviderEmbeddings) return null;
        var settings = options.Value.AllProviders()[LlmOptions.DefaultProvider];
        var client = new OpenAIClient(new ApiKeyCredential("rotated-per-request"), new OpenAIClientOptions
        {
            Endpoint = new Uri(settings.Endpoint ?? LlmOptions.DefaultEndpoint),
            Transport = new HttpClientPipelineTransport(httpClientFactory.CreateClient(HttpClientPrefix + LlmOptions.DefaultProvider)),
            RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
            NetworkTimeout = Timeout.InfiniteTimeSpan,
        });
        return client.GetEmbeddingClient(options.Value.EmbeddingModel).AsIEmbeddingGenerator();
    }

    public void Dispose()
    {
        foreach (var client in _clients.Values) client.Dispose();
    }
}
