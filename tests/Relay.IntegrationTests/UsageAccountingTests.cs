using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Relay.IntegrationTests.Infrastructure;
using Relay.Middleware.Accounting;
using Relay.Middleware.Cancellation;

namespace Relay.IntegrationTests;

/// <summary>Issue 4: one usage record per stream, saying what was generated, what was delivered, and how it ended.</summary>
[Collection(UpstreamCollection.Name)]
public sealed class UsageAccountingTests(MockUpstreamFixture upstream) : IAsyncLifetime
{
    private readonly CapturingSink _sink = new();
    private InProcessRelay _relay = null!;
    private readonly HttpClient _client = new(new SocketsHttpHandler { MaxResponseDrainSize = 0 });

    public async Task InitializeAsync()
        => _relay = await InProcessRelay.StartAsync(upstream.Url, services: s => s.AddSingleton<IStreamUsageSink>(_sink));

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _relay.DisposeAsync();
    }

    [Fact]
    public async Task CompletedStream_RecordsUpstreamUsage_AllDelivered()
    {
        var next = _sink.Next();
        using var request = SseRead.ChatRequest(_relay.Url, headers: new Dictionary<string, string>
        {
            ["x-mock-tokens-per-second"] = "0",
            ["x-mock-ttft-ms"] = "0",
            ["x-mock-max-tokens"] = "12",
        });
        using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var events = await SseRead.ReadAllAsync(response);
        Assert.True(events[^1].IsDone);

        var record = await next.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(StreamEndReason.Completed, record.EndReason);
        Assert.Equal(12, record.CompletionTokensGenerated);
        Assert.False(record.CompletionTokensCounted);
        Assert.Equal(record.CompletionTokensGenerated, record.CompletionTokensDelivered);
        Assert.True(record.PromptTokens > 0, $"prompt tokens: {record.PromptTokens}");
        Assert.NotNull(record.TimeToFirstToken);
        Assert.True(record.Duration >= record.TimeToFirstToken);
    }

    [Fact]
    public async Task CancelledStream_RecordsClientCancelled_DeliveredAtMostGenerated_PromptTokensUnknown()
    {
        var next = _sink.Next();
        using var request = SseRead.ChatRequest(_relay.Url, headers: new Dictionary<string, string>
        {
            ["x-mock-tokens-per-second"] = "20",
            ["x-mock-ttft-ms"] = "0",
            ["x-mock-max-tokens"] = "200",
        });
        var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        await CancellationTests.ReadSomeThenDisposeAsync(response, 3);

        var record = await next.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(StreamEndReason.ClientCancelled, record.EndReason);
        Assert.InRange(record.CompletionTokensGenerated, 3, 199);
        Assert.True(record.CompletionTokensDelivered <= record.CompletionTokensGenerated, $"delivered {record.CompletionTokensDelivered} > generated {record.CompletionTokensGenerated}");
        Assert.True(record.CompletionTokensDelivered >= 3);

        // Cut before the upstream's usage: the log line says the prompt count is unknown instead of printing nothing.
        Assert.Null(record.PromptTokens);
        var line = _relay.Logs.GetSnapshot().Last(r => r.Id.Name == "StreamEnded").Message;
        Assert.Contains("prompt tokens unknown,", line);
    }

    [Fact]
    public async Task IdleTimedOutStream_RecordsIdleTimeout()
    {
        var next = _sink.Next();
        using var request = SseRead.ChatRequest(_relay.Url, headers: new Dictionary<string, string>
        {
            ["x-mock-tokens-per-second"] = "0",
            ["x-mock-ttft-ms"] = "0",
            ["x-mock-max-tokens"] = "50",
            ["x-mock-stall-after-tokens"] = "3",
            ["x-mock-stall-ms"] = "5000",
            ["Relay-Timeout"] = "idle=1",
        });
        using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        await SseRead.ReadAllAsync(response);

        var record = await next.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(StreamEndReason.IdleTimeout, record.EndReason);
        Assert.Equal(3, record.CompletionTokensGenerated);
        Assert.True(record.CompletionTokensCounted);
        Assert.Equal(3, record.CompletionTokensDelivered);
    }

    /// <summary>Hands the next record to whoever waits for it (the tests of this class run one at a time).</summary>
    private sealed class CapturingSink : IStreamUsageSink
    {
        private readonly ConcurrentQueue<TaskCompletionSource<StreamUsageRecord>> _waiting = new();

        public Task<StreamUsageRecord> Next()
        {
            var tcs = new TaskCompletionSource<StreamUsageRecord>(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiting.Enqueue(tcs);
            return tcs.Task;
        }

        public void OnStreamEnded(StreamUsageRecord record)
        {
            if (_waiting.TryDequeue(out var tcs))
            {
                tcs.TrySetResult(record);
            }
        }
    }
}
