using System.Net.Http.Json;
using System.Text.Json.Nodes;

namespace AgentPlatform.Tests.Infrastructure;

public static class HttpExtensions
{
    public static async Task<JsonObject> JsonAsync(this HttpResponseMessage response) =>
        (await response.Content.ReadFromJsonAsync<JsonObject>())!;

    public static Task<HttpResponseMessage> ExecuteAsync(this HttpClient client, object body, string? idempotencyKey = null,
        string? traceParent = null, CancellationToken cancellationToken = default)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/agent/execute") { Content = JsonContent.Create(body) };
        if (idempotencyKey is not null) request.Headers.Add("Idempotency-Key", idempotencyKey);
        if (traceParent is not null) request.Headers.Add("traceparent", traceParent);
        return client.SendAsync(request, cancellationToken);
    }

    public static async Task<JsonObject> StatusAsync(this HttpClient client, string taskId, int wait = 0)
    {
        var response = await client.GetAsync($"/agent/status/{taskId}" + (wait > 0 ? $"?wait={wait}" : ""));
        response.EnsureSuccessStatusCode();
        return await response.JsonAsync();
    }

    /// <summary>Long-polls until the task is final or <paramref name="seconds"/> pass.</summary>
    public static async Task<JsonObject> WaitForFinalAsync(this HttpClient client, string taskId, int seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            var status = await client.StatusAsync(taskId, wait: 10);
            var state = status["status"]!.GetValue<string>();
            if (state is "completed" or "failed" or "cancelled" || DateTime.UtcNow > deadline) return status;
        }
    }

    public static async Task WaitUntilAsync(Func<Task<bool>> condition, int seconds = 30, string what = "condition")
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"Timed out waiting for {what}.");
            await Task.Delay(50);
        }
    }
}
