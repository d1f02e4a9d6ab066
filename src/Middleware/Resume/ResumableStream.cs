using System.Buffers;
using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Relay.Middleware.Cancellation;
using Relay.Middleware.Errors;
using Relay.Middleware.ServerSentEvents;
using Relay.Middleware.State;
using StackExchange.Redis;

namespace Relay.Middleware.Resume;

/// <summary>
/// The producing side of one resumable stream, on the instance that relays its upstream: numbers the events, tees each
/// into the stream's Redis Stream (<c>XADD</c>, fire-and-forget, in order on the one connection), keeps generating
/// while no client reads (up to <see cref="ResumeOptions.DetachedSeconds"/> without any reader on any instance), and
/// stops on a cancel from any instance with a final event every reader receives.
/// </summary>
internal sealed partial class ResumableStream : IDisposable
{
    private readonly Lock _lock = new();
    private readonly RedisState _redis;
    private readonly ResumeOptions _options;
    private readonly StreamLifetime _lifetime;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly RedisKey _events;
    private ITimer? _detachedTimer;
    private long _sequence;
    private bool _stopped;
    private int _attached = 1;

    public ResumableStream(string id, RedisState redis, ResumeOptions options, StreamLifetime lifetime, TimeProvider time, ILogger logger)
    {
        Id = id;
        _redis = redis;
        _options = options;
        _lifetime = lifetime;
        _time = time;
        _logger = logger;
        _events = ResumeKeys.Events(id);
    }

    public string Id { get; }

    /// <summary>Whether the client that started the stream still reads it.</summary>
    public bool Attached => Volatile.Read(ref _attached) == 1;

    /// <summary>The event that ended a stopped stream, for the client that is still attached (written after the relay loop).</summary>
    public (byte[] Payload, long Sequence)? FinalEvent { get; private set; }

    /// <summary>Records the stream in Redis: who may resume and cancel it, and which instance relays it.</summary>
    public void Start(string instanceId, string identity, string? ticketIdentity)
    {
        var db = _redis.Database;
        var meta = ResumeKeys.Meta(Id);
        // The cap on one response, for the resuming responses too: they are served by an endpoint outside any route.
        db.HashSet(meta, [new("owner", instanceId), new("identity", identity), new("ticket", ticketIdentity ?? ""), new("state", "running"),
            new(ResumeKeys.MaxResponseSecondsField, _options.MaxResponseSeconds)], CommandFlags.FireAndForget);
        // Not forever if this instance dies mid-stream: the longest a request may last, then the retention.
        db.KeyExpire(meta, SafetyExpiry, CommandFlags.FireAndForget);
    }

    private TimeSpan SafetyExpiry => _lifetime.Timeouts.MaxDuration + TimeSpan.FromSeconds(_options.RetentionSeconds) + TimeSpan.FromMinutes(1);

    /// <summary>
    /// One whole event from the pipeline (its lines, ending with one newline, without the blank line): numbered, kept in
    /// Redis, and written to the client with its <c>id:</c> when the client is attached. Nothing after a stop.
    /// </summary>
    public void Emit(ReadOnlySpan<byte> payload, IBufferWriter<byte>? client)
    {
        long sequence;
        lock (_lock)
        {
            if (_stopped)
            {
                return;
            }

            sequence = ++_sequence;
            Append(payload.ToArray(), sequence);
        }

        if (client is not null)
        {
            WriteEvent(client, payload, Id, sequence);
        }
    }

    /// <summary>Writes a stored event with its SSE id (WHATWG: the last <c>id:</c> field of an event sets its last event ID).</summary>
    public static void WriteEvent(IBufferWriter<byte> output, ReadOnlySpan<byte> payload, string streamId, long sequence)
    {
        output.Write(payload);
        output.Write("id: "u8);
        var written = System.Text.Encoding.ASCII.GetBytes(streamId, output.GetSpan(streamId.Length));
        output.Advance(written);
        output.Write(":"u8);
        var span = output.GetSpan(20);
        sequence.TryFormat(span, out var digits, provider: CultureInfo.InvariantCulture);
        output.Advance(digits);
        output.Write("\n\n"u8);
    }

    /// <summary>
    /// The client went away, or its response ended at <see cref="ResumeOptions.MaxResponseSeconds"/>: generation goes
    /// on, until the detached time passes with no reader on any instance.
    /// </summary>
    public void Detach(bool atResponseCap = false)
    {
        if (Interlocked.Exchange(ref _attached, 0) == 0)
        {
            return;
        }

        if (atResponseCap)
        {
            Log.ResponseCapped(_logger, Id, _options.MaxResponseSeconds, Volatile.Read(ref _sequence));
        }
        else
        {
            Log.Detached(_logger, Id, _options.DetachedSeconds);
        }

        _detachedTimer = _time.CreateTimer(static s => _ = ((ResumableStream)s!).OnDetachedDeadlineAsync(), this,
            TimeSpan.FromSeconds(_options.DetachedSeconds), Timeout.InfiniteTimeSpan);
    }

    /// <summary>Stops generation: a final error event for every reader, then the upstream is cancelled.</summary>
    public void Stop(StreamEndReason reason)
    {
        var error = RelayErrorTable.ForFailedEnd(reason);
        var buffer = new ArrayBufferWriter<byte>(192);
        SseWriter.WriteErrorEvent(buffer, error.Message, error.Type, error.Code);
        var payload = buffer.WrittenSpan[..^1].ToArray(); // Without the blank line: the id line goes before it.
        lock (_lock)
        {
            if (_stopped)
            {
                return;
            }

            _stopped = true;
            var sequence = ++_sequence;
            Append(payload, sequence);
            FinalEvent = (payload, sequence);
        }

        Log.Stopped(_logger, Id, reason);
        _lifetime.Cancel(reason);
    }

    /// <summary>After the relay loop: the stream replays for <see cref="ResumeOptions.RetentionSeconds"/>, then Redis drops it.</summary>
    public void End()
    {
        long end;
        lock (_lock)
        {
            _stopped = true;
            end = ++_sequence;
        }

        try
        {
            var db = _redis.Database;
            var retention = TimeSpan.FromSeconds(_options.RetentionSeconds);
            // The end mark, after the last event: a follower that reads it has delivered everything, without asking for the state.
            db.StreamAdd(_events, ResumeKeys.EndField, 1, ResumeKeys.EntryId(end), maxLength: _options.MaxEvents, useApproximateMaxLength: true, flags: CommandFlags.FireAndForget);
            db.HashSet(ResumeKeys.Meta(Id), "state", "ended", flags: CommandFlags.FireAndForget);
            db.KeyExpire(ResumeKeys.Meta(Id), retention, CommandFlags.FireAndForget);
            db.KeyExpire(ResumeKeys.Events(Id), retention, CommandFlags.FireAndForget);
        }
        catch (Exception ex) when (ex is RedisException or StateStoreUnavailableException)
        {
            Log.StoreFailed(_logger, Id, ex.GetType().Name);
        }
    }

    public void Dispose() => _detachedTimer?.Dispose();

    private void Append(byte[] payload, long sequence)
    {
        try
        {
            var db = _redis.Database;
            var events = _events;
            db.StreamAdd(events, "d", payload, ResumeKeys.EntryId(sequence), maxLength: _options.MaxEvents, useApproximateMaxLength: true, flags: CommandFlags.FireAndForget);
            if (sequence == 1)
            {
                db.KeyExpire(events, SafetyExpiry, CommandFlags.FireAndForget);
            }
        }
        catch (Exception ex) when (ex is RedisException or StateStoreUnavailableException)
        {
            // Redis went away mid-stream: the live client still gets every event; a resume would miss these.
            Log.StoreFailed(_logger, Id, ex.GetType().Name);
        }
    }

    private async Task OnDetachedDeadlineAsync()
    {
        try
        {
            if (await _redis.Database.KeyExistsAsync(ResumeKeys.Reader(Id)).ConfigureAwait(false))
            {
                // A reader on some instance follows the stream: it has a reader, so the detached clock starts again.
                _detachedTimer?.Change(TimeSpan.FromSeconds(Math.Min(1, _options.DetachedSeconds)), Timeout.InfiniteTimeSpan);
                return;
            }
        }
        catch (Exception ex) when (ex is RedisException or StateStoreUnavailableException)
        {
            Log.StoreFailed(_logger, Id, ex.GetType().Name);
        }

        Stop(StreamEndReason.DetachedTimeout);
    }

    private static partial class Log
    {
        [LoggerMessage(1510, LogLevel.Debug, "The client of resumable stream {StreamId} went away; generation goes on for up to {DetachedSeconds} s without a reader.", EventName = "ResumableStreamDetached")]
        public static partial void Detached(ILogger logger, string streamId, double detachedSeconds);

        [LoggerMessage(1511, LogLevel.Information, "Resumable stream {StreamId} was stopped: {Reason}.", EventName = "ResumableStreamStopped")]
        public static partial void Stopped(ILogger logger, string streamId, StreamEndReason reason);

        [LoggerMessage(1513, LogLevel.Debug, "The response of resumable stream {StreamId} ended at its cap of {MaxResponseSeconds} s after event {Sequence}; generation goes on for the client to resume.", EventName = "ResumableStreamResponseCapped")]
        public static partial void ResponseCapped(ILogger logger, string streamId, double maxResponseSeconds, long sequence);

        [LoggerMessage(1512, LogLevel.Warning, "Resumable stream {StreamId}: Redis did not take an event ({Failure}); a resume may miss it.", EventName = "ResumableStreamStoreFailed")]
        public static partial void StoreFailed(ILogger logger, string streamId, string failure);
    }
}
