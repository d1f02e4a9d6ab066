using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests;

/// <summary>The deployed topology (client -> nginx -> Relay -> upstream), on whichever provider runs here.</summary>
public abstract class StackTests<TProvider> : IAsyncLifetime
    where TProvider : IStackProvider, new()
{
    private readonly TProvider _stack = new();
    private readonly HttpClient _client = new();

    public async Task InitializeAsync()
    {
        if (_stack.SkipReason is null)
        {
            await _stack.StartAsync();
        }
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _stack.DisposeAsync();
    }

    [SkippableFact]
    public async Task ThroughEdgeNginx_TokensStreamIncrementally()
    {
        Skip.If(_stack.SkipReason is not null, _stack.SkipReason);
        using var request = SseRead.ChatRequest(_stack.EdgeUrl, headers: new Dictionary<string, string>
        {
            ["x-mock-tokens-per-second"] = "10", ["x-mock-max-tokens"] = "25", ["x-mock-ttft-ms"] = "0",
        });
        using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var events = await SseRead.ReadAllAsync(response);
        Assert.True(events[^1].IsDone);
        var first = events.First(e => e.Content.Length > 0);
        var lastEmitted = events.Where(e => !e.IsDone).Max(e => e.Json.GetProperty("mock_emitted_us").GetInt64());
        // An order of events, not a bound: a buffering hop delivers the first content only after the last emission.
        Assert.True(first.ReceivedUs < lastEmitted, $"the stream was buffered somewhere in the stack: the first content arrived {(first.ReceivedUs - lastEmitted) / 1000} ms after the last token was emitted");
    }

    [SkippableFact]
    public async Task ThroughEdgeNginx_ErrorsAreOpenAIStyle()
    {
        Skip.If(_stack.SkipReason is not null, _stack.SkipReason);
        var response = await _client.PostAsync($"{_stack.EdgeUrl}/v1/chat/completions", new StringContent("{nope", System.Text.Encoding.UTF8, "application/json"));
        await ErrorTests.AssertErrorAsync(response, 400, "invalid_request_error", "invalid_json");
    }
}

public sealed class ProcessStackTests : StackTests<ProcessStackProvider>;
