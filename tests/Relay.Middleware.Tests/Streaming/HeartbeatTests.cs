using System.IO.Pipelines;
using System.Net.Http;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Relay.Middleware.Cadence;
using Relay.Middleware.Cancellation;
using Relay.Middleware.Configuration;
using Relay.Middleware.Streaming;

namespace Relay.Middleware.Tests.Streaming;

/// <summary>Heartbeats of the relay loop on a <see cref="FakeTimeProvider"/>: due only after the interval of silence, only between events.</summary>
public sealed class HeartbeatTests : IAsyncDisposable
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(15);
    private readonly FakeTimeProvider _time = new();
    private readonly Pipe _upstream = new();
    private readonly Pipe _client = new();
    private readonly StreamLifetime _lifetime;
    private readonly StreamEventPipeline _pipeline;
    private readonly Task<StreamEndReason> _run;

    public HeartbeatTests()
    {
        var context = new DefaultHttpContext();
        context.Features.Set<IHttpResponseBodyFeature>(new StreamResponseBodyFeature(_client.Writer.AsStream()));
        var upstream = new HttpResponseMessage { Content = new StreamContent(_upstream.Reader.AsStream()) };
        _lifetime = new StreamLifetime(_time, null, StreamTimeouts.FromOptions(new TimeoutOptions { FirstTokenSeconds = 0, IdleSeconds = 0, MaxDurationSeconds = 0, WriteStallSeconds = 0 }));
        _pipeline = new StreamEventPipeline(new StreamPipelineSettings { Kind = StreamKind.PassThrough }, _time);
        _run = new SseStreamRelay(_time, NullLogger<SseStreamRelay>.Instance).RunAsync(context, upstream, _pipeline, _lifetime, new StreamHeartbeat(Interval, BeforeFirstByte: false));
    }

    [Fact]
    public async Task Heartbeat_ComesAfterTheIntervalOfSilence_NotBefore()
    {
        await UpstreamAsync("data: a\n\n");
        Assert.Equal("data: a\n\n", await ClientAsync());

        // 14 s of silence: no heartbeat, so the next bytes the client gets are the next event.
        _time.Advance(TimeSpan.FromSeconds(14));
        await UpstreamAsync("data: b\n\n");
        Assert.Equal("data: b\n\n", await ClientAsync());

        // The event restarted the interval: 14 s more is still no heartbeat; 15 s of silence is one.
        _time.Advance(TimeSpan.FromSeconds(14));
        await UpstreamAsync("data: c\n\n");
        Assert.Equal("data: c\n\n", await ClientAsync());
        _time.Advance(Interval);
        Assert.Equal(": keep-alive\n\n", await ClientAsync());
        _time.Advance(Interval);
        Assert.Equal(": keep-alive\n\n", await ClientAsync());
    }

    [Fact]
    public async Task Heartbeat_NeverSplitsAnEvent_AndIsNotUpstreamActivity()
    {
        await UpstreamAsync("data: first\n\n");
        Assert.Equal("data: first\n\n", await ClientAsync());

        // Half an event arrives, then silence: the heartbeat goes out before it, never inside it.
        await UpstreamAsync("data: par");
        _time.Advance(Interval);
        Assert.Equal(": keep-alive\n\n", await ClientAsync());
        await UpstreamAsync("tial\n\n");
        Assert.Equal("data: partial\n\n", await ClientAsync());
        Assert.Equal(2, _pipeline.Accounting.EventsWritten);
    }

    [Fact]
    public async Task NoHeartbeat_BeforeTheFirstByte_UnlessAskedFor()
    {
        _time.Advance(Interval * 3);
        await UpstreamAsync("data: a\n\n");
        Assert.Equal("data: a\n\n", await ClientAsync());
    }

    private async Task UpstreamAsync(string text)
    {
        await _upstream.Writer.WriteAsync(Encoding.UTF8.GetBytes(text));
    }

    private async Task<string> ClientAsync()
    {
        using var timeout = new CancellationTokenSource(Deadline.Default);
        var result = await _client.Reader.ReadAsync(timeout.Token);
        var text = Encoding.UTF8.GetString(result.Buffer);
        _client.Reader.AdvanceTo(result.Buffer.End);
        return text;
    }

    public async ValueTask DisposeAsync()
    {
        await _upstream.Writer.CompleteAsync();
        await _run.WaitAsync(Deadline.Default);
        _pipeline.Dispose();
        _lifetime.Dispose();
    }
}
