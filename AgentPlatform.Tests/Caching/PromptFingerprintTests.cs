using AgentPlatform.Engine.Agents;
using AgentPlatform.Engine.Caching;
using AgentPlatform.Engine.Execution;
using Microsoft.Extensions.AI;

namespace AgentPlatform.Tests.Caching;

/// <summary>What makes two runs the same prompt for the exact cache, and the same context for the semantic cache.</summary>
public sealed class PromptFingerprintTests
{
    private static readonly AgentDefinition Agent = new() { Name = "helper", SystemPrompt = "You answer briefly." };

    private static PromptFingerprint Of(RunInput input, AgentDefinition? agent = null, ChatOptions? options = null, string chain = "default/gpt-4o-mini",
        string strategy = "single") =>
        PromptFingerprint.Of(strategy, [new CacheParticipant(agent ?? Agent, [chain], options ?? new ChatOptions())], input);

    [Fact]
    public void Only_surrounding_whitespace_and_line_ends_are_normalised()
    {
        var plain = Of(new RunInput("What is DNS?\nShort, please."));

        Assert.Equal(plain, Of(new RunInput("  What is DNS?\r\nShort, please.\n")));
        Assert.NotEqual(plain.Exact, Of(new RunInput("what is DNS?\nShort, please.")).Exact);
        Assert.NotEqual(plain.Exact, Of(new RunInput("What is DNS? Short, please.")).Exact);
        Assert.Equal("What is DNS?\nShort, please.", plain.SemanticText);
    }

    [Fact]
    public void Everything_the_model_would_see_or_be_asked_changes_the_exact_key()
    {
        var input = new RunInput("What is DNS?");
        var plain = Of(input);

        var variants = new[]
        {
            Of(input, agent: new AgentDefinition { Name = "helper", SystemPrompt = "You answer at length." }),
            Of(input, agent: new AgentDefinition { Name = "other", SystemPrompt = "You answer briefly." }),
            Of(input, chain: "default/gpt-4o"),
            Of(input, strategy: "parallel"),
            Of(input, options: new ChatOptions { Temperature = 0.2f }),
            Of(input, options: new ChatOptions { MaxOutputTokens = 100 }),
            Of(input, options: new ChatOptions { StopSequences = ["\n"] }),
            Of(input, options: new ChatOptions { Seed = 7 }),
            Of(input, options: new ChatOptions { ResponseFormat = ChatResponseFormat.Json }),
            Of(input, options: new ChatOptions { Tools = [AIFunctionFactory.Create((int a, int b) => a + b, "add")] }),
            Of(input with { ContextJson = """{"audience":"children"}""" }),
            Of(input with { Background = [new ChatMessage(ChatRole.User, "Summary of earlier turns.")] }),
            Of(input with { History = [new ChatMessage(ChatRole.User, "Hi"), new ChatMessage(ChatRole.Assistant, "Hello!")] }),
        };

        Assert.Equal(variants.Length + 1, variants.Select(v => v.Exact).Append(plain.Exact).Distinct().Count());
        // The same options built twice are the same key.
        Assert.Equal(Of(input, options: new ChatOptions { Temperature = 0.2f }), variants[4]);
    }

    [Fact]
    public void The_context_leaves_out_only_the_new_message()
    {
        var history = new List<ChatMessage> { new(ChatRole.User, "Tell me about plants."), new(ChatRole.Assistant, "Plants make food from light.") };

        var one = Of(new RunInput("How do they breathe?") { History = history });
        var paraphrase = Of(new RunInput("How do plants breathe?") { History = history });
        var otherHistory = Of(new RunInput("How do they breathe?") { History = [new ChatMessage(ChatRole.User, "Tell me about fish.")] });

        Assert.NotEqual(one.Exact, paraphrase.Exact);
        Assert.Equal(one.Context, paraphrase.Context);
        Assert.NotEqual(one.Context, otherHistory.Context);
        // A client's conversation ending in a tool result is no prompt to paraphrase.
        var toolResult = Of(new RunInput("x")
        {
            Conversation = [new ChatMessage(ChatRole.User, "Add 2 and 3"), new ChatMessage(ChatRole.Tool, [new FunctionResultContent("call_1", 5)])],
        });
        Assert.Null(toolResult.SemanticText);
    }
}
