using System.Buffers;
using System.IO.Pipelines;
using System.Net.Http;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Relay.Middleware.Cadence;
using Relay.Middleware.Cancellation;
using Relay.Middleware.Errors;
using Relay.Middleware.ServerSentEvents;

namespace Relay.Middleware.Streaming;

/// <summary>
/// The one loop of one SSE stream (docs/design.md, step 5): bytes from the upstream go through the stream's
/// <see cref="StreamEventPipeline"/> straight into Kestrel's response pipe, and are flushed as soon as the pipeline
/// writes them. The loop reads the upstream only after the previous flush completed, so a slow client pushes back
/// over TCP instead of filling memory (Kestrel holds at most its response buffer limit).
/// </summary>
/// <remarks>
/// One task per stream, no pump and no pipe between the upstream and the loop: the outstanding upstream read stays
/// pending while the loop wakes for a deadline (<see cref="StreamLoopWakeup"/>), because cancelling a read of an
/// HttpClient response stream tears the connection down. As YARP's <c>StreamCopier</c> does, the loop first reads
/// zero bytes, so a silent stream holds no buffer, and rents one only for the bytes in hand, returning it as soon
/// as the pipeline has processed them.
/// </remarks>
internal sealed partial class SseStreamRelay
{
    private const int ReadSize = 4096;

    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public SseStreamRelay(TimeProvider time, ILogger<SseStreamRelay> logger)
    {
        _time = time;
        _logger = logger;
    }

    /// <summary>Relays the upstream's event stream to the client until it ends, fails, or is cancelled.</summary>
    /// <remarks>
    /// Heartbeats (<paramref name="heartbeat"/>): after a heartbeat interval without a write to the client, a
    /// <c>: keep-alive</c> comment goes out, so that proxies and edge runtimes with idle timeouts keep the stream
    /// open while the upstream is silent. The same wake-up as the cadence's wakes the loop for it. A heartbeat is
    /// written only when the output holds no partial event (the pipeline writes whole events), and it is not upstream
    /// activity: the idle timeout keeps running, and it does not end the first-token timeout.
    /// </remarks>
    public async Task<StreamEndReason> RunAsync(HttpContext context, HttpResponseMessage upstream, StreamEventPipeline pipeline, StreamLifetime lifetime, StreamHeartbeat heartbeat = default)
    {
        var token = lifetime.Token;
        var output = context.Response.BodyWriter;
        Stream body;
        try
        {
            body = await upstream.Content.ReadAsStreamAsync(token);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or HttpRequestException or ObjectDisposedException)
        {
            return await EndAsync(context, pipeline, lifetime, ex);
        }

        using var wakeup = new StreamLoopWakeup(_time);
        var heartbeatTicks = heartbeat.Interval > TimeSpan.Zero ? (long)(heartbeat.Interval.TotalSeconds * _time.TimestampFrequency) : 0;
        var lastWrite = _time.GetTimestamp();

        // The read in flight: a zero-byte read while buffer is null, else a read into the rented buffer.
        ValueTask<int> read = default;
        var reading = false;
        var watched = false;
        byte[]? buffer = null;
        try
        {
            while (true)
            {
                int received;
                try
                {
                    if (!reading)
                    {
                        read = buffer is null ? body.ReadAsync(Memory<byte>.Empty, token) : body.ReadAsync(buffer, token);
                        reading = true;
                        watched = false;
                    }

                    var heartbeatsOn = heartbeatTicks > 0 && (heartbeat.BeforeFirstByte || lifetime.FirstByteAt != 0);
                    if (!read.IsCompleted)
                    {
                        var wake = pipeline.FlushDeadline ?? long.MaxValue;
                        if (heartbeatsOn)
                        {
                            wake = Math.Min(wake, lastWrite + heartbeatTicks);
                        }

                        if (wake > _time.GetTimestamp())
                        {
                            await wakeup.WaitAsync(read, newRead: !watched, wake);
                            watched = true;
                        }
                    }

                    received = -1;
                    if (read.IsCompleted)
                    {
                        reading = false;
                        received = read.GetAwaiter().GetResult();
                    }
                }
                catch (Exception ex) when (ex is OperationCanceledException or IOException or HttpRequestException or ObjectDisposedException)
                {
                    return await EndAsync(context, pipeline, lifetime, ex);
                }

                if (received >= 0 && buffer is null)
                {
                    // The zero-byte read completed: bytes (or the end) are in hand, so a buffer is worth renting now.
                    buffer = ArrayPool<byte>.Shared.Rent(ReadSize);
                    continue;
                }

                var wroteData = false;
                if (received == 0)
                {
                    ReturnBuffer(ref buffer);
                    return await CompleteAsync(context, pipeline, lifetime);
                }

                if (received > 0)
                {
                    lifetime.OnUpstreamActivity();
                    pipeline.Process(new ReadOnlySequence<byte>(buffer!, 0, received), output);
                    ReturnBuffer(ref buffer);
                    wroteData = output.UnflushedBytes > 0;
                }

                if (pipeline.StructuredViolation is not null)
                {
                    // Structured output: the output broke its schema; stop paying for it.
                    return await EndBySchemaViolationAsync(context, pipeline, lifetime);
                }

                var now = _time.GetTimestamp();
                if (pipeline.FlushDeadline <= now)
                {
                    pipeline.OnDeadline(output);
                }

                var heartbeatOnly = false;
                if (heartbeatTicks > 0 && !wroteData && output.UnflushedBytes == 0 && now - lastWrite >= heartbeatTicks
                    && (heartbeat.BeforeFirstByte || lifetime.FirstByteAt != 0))
                {
                    SseWriter.WriteComment(output, " keep-alive"u8);
                    heartbeatOnly = true;
                }

                if (output.UnflushedBytes > 0)
                {
                    // The heartbeat interval runs from when the bytes were written, not from when the flush returned:
                    // the same instant whether the client took them at once or a moment later.
                    var writtenAt = _time.GetTimestamp();
                    if (!await FlushAsync(output, lifetime, firstByte: !heartbeatOnly))
                    {
                        // A write that fails is the client's failure, not the upstream's (unless a timeout came first).
                        lifetime.Cancel(StreamEndReason.ClientCancelled);
                        return await EndAsync(context, pipeline, lifetime, null);
                    }

                    lastWrite = writtenAt;
                }
            }
        }
        finally
        {
            if (reading)
            {
                // Leaving with a read in flight (the client went away, or a bug): the stream's token ends it, and the
                // buffer it reads into goes back to the pool only once it has.
                lifetime.Cancel(lifetime.ClientGone ? StreamEndReason.ClientCancelled : StreamEndReason.UpstreamError);
                try
                {
                    await read;
                }
                catch (Exception)
                {
                    // The stream is over: how its abandoned read ended changes nothing.
                }
            }

            ReturnBuffer(ref buffer);
            await body.DisposeAsync();
        }
    }

    private static void ReturnBuffer(ref byte[]? buffer)
    {
        if (buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            buffer = null;
        }
    }

    private async Task<StreamEndReason> CompleteAsync(HttpContext context, StreamEventPipeline pipeline, StreamLifetime lifetime)
    {
        var accounting = pipeline.Accounting;
        var output = context.Response.BodyWriter;

        // A chat stream is complete with its [DONE] (or the upstream's own error event), even when the upstream
        // closed right after the [DONE] line without the blank line; any other unterminated last event is discarded
        // (WHATWG), so the truncation error follows the last whole event. A stream Relay does not rewrite passes
        // through as sent, end included: its client decides what an unterminated last event means.
        StreamEndReason outcome;
        var dispatched = pipeline.TryDispatchFinalEvent(output);
        if (pipeline.StructuredViolation is not null)
        {
            // Structured output: the last event broke the schema (a stop whose document is incomplete or invalid).
            return await EndBySchemaViolationAsync(context, pipeline, lifetime);
        }

        if (!dispatched)
        {
            // Never a silent cut: the client learns that the upstream ended the stream early.
            Log.UpstreamTruncated(_logger);
            pipeline.Fail(output, "The upstream ended the stream before it was complete.", RelayErrorTypes.UpstreamError, "upstream_truncated");
            outcome = StreamEndReason.UpstreamError;
        }
        else
        {
            pipeline.Complete(output);
            outcome = accounting.UpstreamErrorSeen ? StreamEndReason.UpstreamError : StreamEndReason.Completed;
        }

        var clientHasEverything = output.UnflushedBytes == 0;
        if (!await FlushAsync(output, lifetime))
        {
            // The client left at the very end (a reset right after [DONE] is common): nobody is left to tell, so no
            // error event and no "ended early" log. With nothing pending, it had already received the whole stream.
            lifetime.Cancel(clientHasEverything ? outcome : StreamEndReason.ClientCancelled);
            Log.ClientGone(_logger, lifetime.Reason);
            lifetime.Abort();
            return lifetime.Reason;
        }

        lifetime.Complete(outcome);
        return lifetime.Reason;
    }

    /// <summary>Ends a stream that cannot go on: tells the client why, when the client can still be told.</summary>
    private async Task<StreamEndReason> EndAsync(HttpContext context, StreamEventPipeline pipeline, StreamLifetime lifetime, Exception? failure)
    {
        if (lifetime.Reason == StreamEndReason.None)
        {
            // Not one of our own cancellations: the upstream failed (reset, truncated mid-read).
            lifetime.Cancel(lifetime.ClientGone ? StreamEndReason.ClientCancelled : StreamEndReason.UpstreamError);
        }

        var reason = lifetime.Reason;
        if (reason is StreamEndReason.ClientCancelled or StreamEndReason.WriteStallTimeout)
        {
            // Nobody is reading: drop the connection rather than write into it.
            Log.ClientGone(_logger, reason);
            lifetime.Abort();
            return reason;
        }

        var error = RelayErrorTable.ForFailedEnd(reason, connectionFailed: failure is not null);
        if (!context.Response.HasStarted && pipeline.Accounting.EventsWritten == 0 && context.Response.BodyWriter.UnflushedBytes == 0)
        {
            // Nothing reached the client yet: a plain HTTP error is still possible.
            await OpenAIError.TryWriteResponseAsync(context, error.Status, error.Message, error.Type, error.Code);
            return reason;
        }

        Log.StreamEndedWithError(_logger, reason, error.Code);
        pipeline.Fail(context.Response.BodyWriter, error.Message, error.Type, error.Code);
        try
        {
            using var flushTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(5), _time);
            await context.Response.BodyWriter.FlushAsync(flushTimeout.Token);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            lifetime.Abort();
        }

        return reason;
    }

    /// <summary>
    /// The structured output broke its schema. The upstream is cancelled at once (the lifetime's token is
    /// the upstream request's), and the client gets what was valid, then a final <c>schema_violation</c> error event
    /// whose <c>param</c> is the JSON Pointer of the offending value.
    /// </summary>
    private async Task<StreamEndReason> EndBySchemaViolationAsync(HttpContext context, StreamEventPipeline pipeline, StreamLifetime lifetime)
    {
        lifetime.Cancel(StreamEndReason.SchemaViolation);
        var violation = pipeline.StructuredViolation!;
        Log.StreamEndedWithError(_logger, StreamEndReason.SchemaViolation, StructuredOutput.StructuredOutputErrors.Code);
        pipeline.Fail(context.Response.BodyWriter, $"The model's output does not match the response_format schema: {violation.Message}",
            StructuredOutput.StructuredOutputErrors.Type, StructuredOutput.StructuredOutputErrors.Code, violation.Pointer);
        try
        {
            using var flushTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(5), _time);
            await context.Response.BodyWriter.FlushAsync(flushTimeout.Token);
            lifetime.OnFirstByteSent();
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            lifetime.Abort();
        }

        return lifetime.Reason;
    }

    /// <summary>Flushes; a flush that does not complete at once runs against the write-stall timeout.</summary>
    private static async ValueTask<bool> FlushAsync(PipeWriter output, StreamLifetime lifetime, bool firstByte = true)
    {
        try
        {
            var flush = output.FlushAsync(lifetime.Token);
            FlushResult result;
            if (flush.IsCompletedSuccessfully)
            {
                result = flush.Result;
            }
            else
            {
                lifetime.BeginStalledWrite();
                result = await flush;
                lifetime.EndStalledWrite();
            }

            if (firstByte)
            {
                lifetime.OnFirstByteSent();
            }

            return !result.IsCanceled && !result.IsCompleted;
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            return false;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Debug, "The client went away ({Reason}); the upstream request was cancelled.", EventName = "ClientGone")]
        public static partial void ClientGone(ILogger logger, StreamEndReason reason);

        [LoggerMessage(2, LogLevel.Warning, "The upstream ended the stream before [DONE]; the client received an error event.", EventName = "UpstreamTruncated")]
        public static partial void UpstreamTruncated(ILogger logger);

        [LoggerMessage(3, LogLevel.Information, "The stream ended early ({Reason}, {Code}); the client received an error event.", EventName = "StreamEndedWithError")]
        public static partial void StreamEndedWithError(ILogger logger, StreamEndReason reason, string? code);
    }
}
