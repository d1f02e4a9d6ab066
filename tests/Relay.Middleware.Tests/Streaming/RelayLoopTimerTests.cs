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

/// <summary>
/// The relay loop's wake-up timer. The heartbeat deadline moves with every write; re-arming the
/// timer for it on every event cost a timer change per event. Only an earlier deadline re-arms it now; a later one
/// lets it fire early, and the loop re-arms once.
/// </summary>
public sealed class RelayLoopTimerTests : IAsyncDisposable
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(15);
    private readonly CountingTimeProvider _time = new();
    private readonly Pipe _upstream = new();
    private readonly Pipe _client = new();
    private readonly StreamLifetime _lifetime;
    private readonly StreamEventPipeline _pipeline;
    private readonly Task<StreamEndReason> _run;

    public RelayLoopTimerTests()
    {
        var context = new DefaultHttpContext();
        context.Features.Set<IHttpResponseBodyFeature>(new StreamResponseBodyFeature(_client.Writer.AsStream()));
        var upstream = new HttpResponseMessage { Content = new StreamContent(_upstream.Reader.AsStream()) };
        _lifetime = new StreamLifetime(_time.Fake, null, StreamTimeouts.FromOptions(new TimeoutOptions { FirstTokenSeconds = 0, IdleSeconds = 0, MaxDurationSeconds = 0, WriteStallSeconds = 0 }));
        _pipeline = new StreamEventPipeline(new StreamPipelineSettings { Kind = StreamKind.PassThrough }, _time);
        _run = new SseStreamRelay(_time, NullLogger<SseStreamRelay>.Instance).RunAsync(context, upstream, _pipeline, _lifetime, new StreamHeartbeat(Interval, BeforeFirstByte: false));
    }

    [Fact]
    public async Task EventsOneSecondApart_DoNotChangeTheTimerPerEvent_AndTheHeartbeatStillFollowsTheLastWrite()
    {
        const int Events = 20;
        for (var i = 0; i < Events; i++)
        {
            await _upstream.Writer.WriteAsync(Encoding.UTF8.GetBytes($"data: {i}\n\n"));
            Assert.Equal($"data: {i}\n\n", await ClientAsync());
            _time.Fake.Advance(TimeSpan.FromSeconds(1));
        }

        // 20 writes over 20 s: the timer armed after the first write fired once early (at 15 s) and was re-armed.
        Assert.InRange(_time.TimerChanges, 1, 4);

        // The last write was at 19 s: 14 s later nothing is due, 15 s later the heartbeat is.
        _time.Fake.Advance(Interval - TimeSpan.FromSeconds(2));
        await _upstream.Writer.WriteAsync(Encoding.UTF8.GetBytes("data: last\n\n"));
        Assert.Equal("data: last\n\n", await ClientAsync());
        _time.Fake.Advance(Interval);
        Assert.Equal(": keep-alive\n\n", await ClientAsync());
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

    /// <summary>A <see cref="FakeTimeProvider"/> that counts the changes of the timers it creates.</summary>
    private sealed class CountingTimeProvider : TimeProvider
    {
        private int _changes;

        public FakeTimeProvider Fake { get; } = new();

        public int TimerChanges => Volatile.Read(ref _changes);

        public override long TimestampFrequency => Fake.TimestampFrequency;

        public override long GetTimestamp() => Fake.GetTimestamp();

        public override DateTimeOffset GetUtcNow() => Fake.GetUtcNow();

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
            => new CountingTimer(Fake.CreateTimer(callback, state, dueTime, period), this);

        private sealed class CountingTimer(ITimer inner, CountingTimeProvider owner) : ITimer
        {
            public bool Change(TimeSpan dueTime, TimeSpan period)
            {
                Interlocked.Increment(ref owner._changes);
                return inner.Change(dueTime, period);
            }

            public void Dispose() => inner.Dispose();

            public ValueTask DisposeAsync() => inner.DisposeAsync();
        }
    }
}
