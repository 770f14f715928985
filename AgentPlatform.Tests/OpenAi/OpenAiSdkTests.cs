using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using AgentPlatform.Tests.Infrastructure;
using OpenAI;
using OpenAI.Chat;

namespace AgentPlatform.Tests.OpenAi;

/// <summary>
/// The official OpenAI .NET SDK, unchanged, against the running Api: base URL /v1 and a platform key are all it needs.
/// </summary>
[Collection(PlatformCollection.Name)]
public sealed class OpenAiSdkTests(PlatformFixture platform)
{
    private OpenAIClient Sdk(string key) => new(new ApiKeyCredential(key), new OpenAIClientOptions
    {
        Endpoint = new Uri(platform.Client().BaseAddress!, "/v1"),
        // The SDK retries 429 and 5xx by default; these tests want to see the first answer.
        RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
    });

    private static string Marker(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];

    /// <summary>The requests the double received for a marker (not its answers), in order.</summary>
    private List<LlmCall> Requests(string marker) => platform.Llm.CallsFor(marker).Where(c => !c.Completed).ToList();

    [Fact]
    public async Task The_sdk_lists_the_agents_the_key_may_use_and_auto_as_models()
    {
        var restricted = Sdk(await platform.CreateKeyAsync(allowedAgents: ["math", "code"])).GetOpenAIModelClient();
        var unrestricted = Sdk(await platform.CreateKeyAsync()).GetOpenAIModelClient();

        var models = (await restricted.GetModelsAsync()).Value;
        var all = (await unrestricted.GetModelsAsync()).Value;
        var math = (await restricted.GetModelAsync("math")).Value;
        var hidden = await Assert.ThrowsAsync<ClientResultException>(() => restricted.GetModelAsync("writer"));

        Assert.Equal(new[] { "auto", "code", "math" }, models.Select(m => m.Id).Order().ToArray());
        Assert.All(models, m => Assert.Equal("agentplatform", m.OwnedBy));
        Assert.Contains(all, m => m.Id == "writer");
        Assert.Contains(all, m => m.Id == "research");
        Assert.Equal("math", math.Id);
        // An agent the key may not use is not there for it (404), as a model without access is at OpenAI.
        Assert.Equal(404, hidden.Status);
    }

    [Fact]
    public async Task A_chat_completion_through_the_sdk_returns_the_agents_answer_and_usage()
    {
        var marker = Marker("sdk-chat");
        platform.Llm.Script(marker, new LlmStep(Content: "Paris is the capital of France.", PromptTokens: 321, CompletionTokens: 17));
        var chat = Sdk(await platform.CreateKeyAsync()).GetChatClient("research");

        var completion = (await chat.CompleteChatAsync(
            [new SystemChatMessage("Answer in one sentence."), new UserChatMessage($"{marker}: what is the capital of France?")],
            new ChatCompletionOptions { Temperature = 0.25f, MaxOutputTokenCount = 64 })).Value;

        Assert.Equal("Paris is the capital of France.", completion.Content.Single().Text);
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.Equal("research", completion.Model);
        Assert.Equal(321, completion.Usage.InputTokenCount);
        Assert.Equal(17, completion.Usage.OutputTokenCount);
        Assert.Equal(338, completion.Usage.TotalTokenCount);
        Assert.StartsWith("chatcmpl-", completion.Id);

        // The model saw the agent's system prompt, then the client's own messages, with the client's settings.
        var request = Assert.Single(Requests(marker));
        var roles = request.Messages!.Select(m => m!["role"]!.GetValue<string>()).ToArray();
        Assert.Equal(new[] { "system", "system", "user" }, roles);
        Assert.Contains("research analyst", request.Messages![0]!["content"]!.ToJsonString());
        Assert.Equal(0.25, request.Body!["temperature"]!.GetValue<double>(), 3);
        Assert.Equal(64, (request.Body["max_completion_tokens"] ?? request.Body["max_tokens"])!.GetValue<int>());
    }

    [Fact]
    public async Task A_streamed_completion_through_the_sdk_arrives_in_pieces_and_ends_with_usage()
    {
        var marker = Marker("sdk-stream");
        platform.Llm.Script(marker, new LlmStep(Content: "one two three four five", PromptTokens: 40, CompletionTokens: 5,
            ChunkDelay: TimeSpan.FromMilliseconds(20)));
        var chat = Sdk(await platform.CreateKeyAsync()).GetChatClient("writer");

        var pieces = new List<string>();
        ChatTokenUsage? usage = null;
        ChatFinishReason? finish = null;
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage($"{marker}: count to five")]))
        {
            pieces.AddRange(update.ContentUpdate.Select(p => p.Text).Where(t => t.Length > 0));
            usage ??= update.Usage;
            finish ??= update.FinishReason;
        }

        Assert.Equal("one two three four five", string.Concat(pieces));
        Assert.True(pieces.Count >= 5, $"{pieces.Count} pieces");
        Assert.Equal(ChatFinishReason.Stop, finish);
        // The SDK asks for stream_options.include_usage; the last chunk carries the task's usage.
        Assert.NotNull(usage);
        Assert.Equal(40, usage.InputTokenCount);
        Assert.Equal(5, usage.OutputTokenCount);
        Assert.True(Assert.Single(Requests(marker)).Body!["stream"]!.GetValue<bool>(), "the platform streamed from the model too");
    }

    [Fact]
    public async Task A_client_tool_call_goes_back_to_the_sdk_and_its_result_reaches_the_model()
    {
        var marker = Marker("sdk-tool");
        platform.Llm.Script(marker,
            new LlmStep(ToolCalls: [new ToolCallStep("get_weather", """{"city":"Paris"}""")], PromptTokens: 80, CompletionTokens: 12),
            new LlmStep(Content: "It is sunny and 21 °C in Paris.", PromptTokens: 120, CompletionTokens: 10));
        var chat = Sdk(await platform.CreateKeyAsync()).GetChatClient("general");
        var weather = ChatTool.CreateFunctionTool("get_weather", "The current weather in a city",
            BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"""));
        var options = new ChatCompletionOptions { Tools = { weather } };
        List<ChatMessage> messages = [new UserChatMessage($"{marker}: what is the weather in Paris?")];

        var first = (await chat.CompleteChatAsync(messages, options)).Value;

        Assert.Equal(ChatFinishReason.ToolCalls, first.FinishReason);
        var call = Assert.Single(first.ToolCalls);
        Assert.Equal("get_weather", call.FunctionName);
        Assert.Equal("Paris", JsonNode.Parse(call.FunctionArguments.ToString())!["city"]!.GetValue<string>());
        Assert.Equal(80, first.Usage.InputTokenCount);
        // The model was offered the client's function beside the agent's own tools.
        var offered = Requests(marker)[0].Tools!.Select(t => t!["function"]!["name"]!.GetValue<string>()).Order().ToArray();
        Assert.Equal(new[] { "calculator", "current_time", "get_weather", "my_tasks" }, offered);

        messages.Add(new AssistantChatMessage(first));
        messages.Add(new ToolChatMessage(call.Id, "sunny, 21 °C"));
        var second = (await chat.CompleteChatAsync(messages, options)).Value;

        Assert.Equal(ChatFinishReason.Stop, second.FinishReason);
        Assert.Equal("It is sunny and 21 °C in Paris.", second.Content.Single().Text);
        var followUp = Requests(marker)[1].Messages!.Select(m => m!.AsObject()).ToList();
        var assistant = followUp.Single(m => m["role"]!.GetValue<string>() == "assistant");
        Assert.Equal(call.Id, assistant["tool_calls"]![0]!["id"]!.GetValue<string>());
        var tool = followUp.Single(m => m["role"]!.GetValue<string>() == "tool");
        Assert.Equal(call.Id, tool["tool_call_id"]!.GetValue<string>());
        Assert.Contains("sunny, 21 °C", tool["content"]!.ToJsonString(new System.Text.Json.JsonSerializerOptions
        {
            Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        }));
    }

    [Fact]
    public async Task The_agents_own_tools_run_inside_the_call_and_only_the_clients_calls_reach_the_sdk()
    {
        var marker = Marker("sdk-mixed");
        platform.Llm.Script(marker,
            new LlmStep(ToolCalls: [new ToolCallStep("calculator", """{"expression":"6*7"}""")]),
            new LlmStep(ToolCalls: [new ToolCallStep("book_table", """{"guests":42}""")]),
            new LlmStep(Content: "Booked."));
        var chat = Sdk(await platform.CreateKeyAsync()).GetChatClient("general");
        var book = ChatTool.CreateFunctionTool("book_table", "Books a table",
            BinaryData.FromString("""{"type":"object","properties":{"guests":{"type":"integer"}}}"""));

        var completion = (await chat.CompleteChatAsync([new UserChatMessage($"{marker}: book a table for six times seven guests")],
            new ChatCompletionOptions { Tools = { book } })).Value;

        // The calculator (the agent's tool) ran on the platform; the model's second turn saw its result.
        var requests = Requests(marker);
        Assert.Equal(2, requests.Count);
        var calculated = requests[1].Messages!.Single(m => m!["role"]!.GetValue<string>() == "tool")!["content"]!.ToJsonString();
        Assert.Contains("42", calculated);
        // Only the client's function comes back, with the finish reason that asks the client to act.
        Assert.Equal(ChatFinishReason.ToolCalls, completion.FinishReason);
        var call = Assert.Single(completion.ToolCalls);
        Assert.Equal("book_table", call.FunctionName);
        Assert.Equal(42, JsonNode.Parse(call.FunctionArguments.ToString())!["guests"]!.GetValue<int>());
    }

    [Fact]
    public async Task Errors_reach_the_sdk_as_its_own_exception_with_the_status_code()
    {
        var key = await platform.CreateKeyAsync();

        var unknownModel = await Assert.ThrowsAsync<ClientResultException>(() =>
            Sdk(key).GetChatClient("no-such-agent").CompleteChatAsync([new UserChatMessage("hello")]));
        var badKey = await Assert.ThrowsAsync<ClientResultException>(() =>
            Sdk("not-a-platform-key").GetChatClient("general").CompleteChatAsync([new UserChatMessage("hello")]));

        Assert.Equal(404, unknownModel.Status);
        // The SDK read OpenAI's error body: its message carries the code and the platform's explanation.
        Assert.Contains("model_not_found", unknownModel.Message);
        Assert.Contains("no-such-agent", unknownModel.Message);
        Assert.Equal(401, badKey.Status);
        Assert.Contains("invalid_api_key", badKey.Message);
    }

    [Fact]
    public async Task The_rate_limit_reaches_the_sdk_as_a_429_with_retry_after()
    {
        var key = await platform.CreateKeyAsync(tier: "free");
        var http = platform.Client(key);
        for (var i = 0; i < 10; i++) (await http.GetAsync("/v1/models")).EnsureSuccessStatusCode();

        var limited = await Assert.ThrowsAsync<ClientResultException>(() =>
            Sdk(key).GetChatClient("general").CompleteChatAsync([new UserChatMessage("one request too many")]));

        Assert.Equal(429, limited.Status);
        Assert.Contains("rate_limit_exceeded", limited.Message);
        Assert.True(limited.GetRawResponse()!.Headers.TryGetValue("Retry-After", out var retryAfter));
        Assert.InRange(int.Parse(retryAfter!), 1, 60);
    }

    [Fact]
    public async Task Embeddings_through_the_sdk_come_from_the_configured_model_and_the_local_one_on_request()
    {
        var sdk = Sdk(await platform.CreateKeyAsync());
        var callsBefore = platform.Llm.EmbeddingCalls;

        var provider = (await sdk.GetEmbeddingClient(PlatformFixture.EmbeddingModel)
            .GenerateEmbeddingsAsync(["refactor this csharp method", "bake a sourdough bread"])).Value;
        var callsAfterProvider = platform.Llm.EmbeddingCalls;
        var local = (await sdk.GetEmbeddingClient("local").GenerateEmbeddingAsync("refactor this csharp method")).Value;
        var unknown = await Assert.ThrowsAsync<ClientResultException>(() =>
            sdk.GetEmbeddingClient("text-embedding-ada-002").GenerateEmbeddingAsync("hello"));

        // The SDK asks for base64; the vectors decode to what the provider (the double: the local algorithm) computed.
        Assert.Equal(2, provider.Count);
        Assert.Equal(AgentPlatform.Engine.Routing.LocalEmbeddingGenerator.Embed("bake a sourdough bread"), provider[1].ToFloats().ToArray());
        Assert.True(provider.Usage.InputTokenCount > 0);
        Assert.Equal(callsBefore + 1, callsAfterProvider);
        Assert.Equal(AgentPlatform.Engine.Routing.LocalEmbeddingGenerator.Embed("refactor this csharp method"), local.ToFloats().ToArray());
        Assert.Equal(callsAfterProvider, platform.Llm.EmbeddingCalls); // "local" never asks the provider
        Assert.Equal(404, unknown.Status);
    }
}
