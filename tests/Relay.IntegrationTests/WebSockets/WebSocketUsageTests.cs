using System.Threading.Channels;
using Microsoft.Extensions.DependencyInjection;
using Relay.IntegrationTests.Infrastructure;
using Relay.Middleware.Accounting;
using Relay.Middleware.Cancellation;

namespace Relay.IntegrationTests.WebSockets;

/// <summary>
/// <c>response.done</c> reports the usage of the response's <c>StreamEnded</c> record, so a client
/// and the accounting never disagree about one response.
/// </summary>
public sealed class WebSocketUsageTests(MockUpstreamFixture upstream) : RelayTestBase(upstream)
{
    private readonly Channel<StreamUsageRecord> _records = Channel.CreateUnbounded<StreamUsageRecord>();

    protected override void ConfigureServices(IServiceCollection services) => services.AddSingleton<IStreamUsageSink>(new ChannelSink(_records.Writer));

    // Seed 1 at full pace: the mock holds the tokens of a character split over several tokens until it is whole, so
    // the upstream sends fewer content events (219) than its usage counts tokens (234).
    [Fact]
    public async Task CompletedResponse_DeliveredEqualsGenerated_AsInTheStreamEndedRecord()
    {
        var done = await RunAsync(new Dictionary<string, string>
        {
            ["x-mock-seed"] = "1",
            ["x-mock-tokens-per-second"] = "0",
            ["x-mock-ttft-ms"] = "0",
        }, cancelAfterChunks: null);
        var record = await _records.Reader.ReadAsync().AsTask().WaitAsync(Deadline.Default);

        Assert.Equal("completed", done.GetProperty("status").GetString());
        Assert.Equal(StreamEndReason.Completed, record.EndReason);
        var usage = done.GetProperty("usage");
        Assert.False(usage.GetProperty("completion_tokens_counted").GetBoolean());
        Assert.Equal(usage.GetProperty("completion_tokens").GetInt64(), usage.GetProperty("completion_tokens_delivered").GetInt64());
        AssertSameUsage(record, usage);
    }

    [Fact]
    public async Task CancelledResponse_ReportsTheStreamEndedRecordsFigures()
    {
        var done = await RunAsync(new Dictionary<string, string>
        {
            ["x-mock-seed"] = "1",
            ["x-mock-tokens-per-second"] = "50",
            ["x-mock-ttft-ms"] = "0",
        }, cancelAfterChunks: 3);
        var record = await _records.Reader.ReadAsync().AsTask().WaitAsync(Deadline.Default);

        Assert.Equal("cancelled", done.GetProperty("status").GetString());
        Assert.Equal(StreamEndReason.ClientCancelled, record.EndReason);
        AssertSameUsage(record, done.GetProperty("usage"));
    }

    private static void AssertSameUsage(StreamUsageRecord record, System.Text.Json.JsonElement usage)
    {
        Assert.Equal(record.CompletionTokensGenerated, usage.GetProperty("completion_tokens").GetInt64());
        Assert.Equal(record.CompletionTokensDelivered, usage.GetProperty("completion_tokens_delivered").GetInt64());
        Assert.Equal(record.CompletionTokensCounted, usage.GetProperty("completion_tokens_counted").GetBoolean());
        Assert.Equal(record.PromptTokens, usage.GetProperty("prompt_tokens") is { ValueKind: System.Text.Json.JsonValueKind.Number } p ? p.GetInt64() : null);
    }

    private async Task<System.Text.Json.JsonElement> RunAsync(Dictionary<string, string> knobs, int? cancelAfterChunks)
    {
        await using var client = await BridgeClient.ConnectAsync(Relay.Url, knobs);
        await client.ReceiveAsync();
        await client.SendAsync(BridgeClient.Create());
        if (cancelAfterChunks is int chunks)
        {
            var content = 0;
            await client.ReceiveUntilAsync("response.chunk", m => m.Content.Length > 0 && ++content >= chunks);
            await client.SendAsync(new { type = "response.cancel" });
        }

        var messages = await client.ReceiveUntilAsync("response.done", timeout: TimeSpan.FromSeconds(30));
        return messages[^1].Json.GetProperty("response");
    }

    private sealed class ChannelSink(ChannelWriter<StreamUsageRecord> writer) : IStreamUsageSink
    {
        public void OnStreamEnded(StreamUsageRecord record) => writer.TryWrite(record);
    }
}
