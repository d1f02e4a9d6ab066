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
/// The single-consumer loop of one SSE stream (DESIGN.md, step 5): bytes from the upstream go through the
/// stream's <see cref="StreamEventPipeline"/> straight into Kestrel's response pipe, and are flushed as soon as
/// the pipeline writes them. The loop reads the upstream only after the previous flush completed, so a slow
/// client pushes back over TCP instead of filling memory (Kestrel holds at most its response buffer limit).
/// </summary>
internal sealed partial class SseStreamRelay
{
    private const int MinimumReadSize = 2048;

    // Small segments, and a pause threshold: the pump stops reading the upstream while this much waits.
    private static readonly PipeOptions PipeOptions = new(
        minimumSegmentSize: 4096, pauseWriterThreshold: 32 * 1024, resumeWriterThreshold: 16 * 1024, useSynchronizationContext: false);

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
    /// open while the upstream is silent. The same timer as the cadence wakes the loop for it. A heartbeat is written
    /// only when the output holds no partial event (the pipeline writes whole events), and it is not upstream
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

        // The upstream is pumped into a small pipe, and the loop reads the pipe. The pipe's CancelPendingRead
        // wakes the loop for a cadence deadline without touching the upstream read: cancelling a read of an
        // HttpClient response stream (which StreamPipeReader.CancelPendingRead does) tears the connection down.
        var pipe = new Pipe(PipeOptions);
        var pump = PumpAsync(body, pipe.Writer, lifetime);
        var reader = pipe.Reader;
        using var cadenceTimer = _time.CreateTimer(static s => ((PipeReader)s!).CancelPendingRead(), reader, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        long armedFor = 0;
        var heartbeatTicks = heartbeat.Interval > TimeSpan.Zero ? (long)(heartbeat.Interval.TotalSeconds * _time.TimestampFrequency) : 0;
        var lastWrite = _time.GetTimestamp();
        try
        {
            while (true)
            {
                var wake = pipeline.FlushDeadline ?? long.MaxValue;
                var heartbeatsOn = heartbeatTicks > 0 && (heartbeat.BeforeFirstByte || lifetime.FirstByteAt != 0);
                if (heartbeatsOn)
                {
                    wake = Math.Min(wake, lastWrite + heartbeatTicks);
                }

                if (wake != long.MaxValue && wake != armedFor)
                {
                    armedFor = wake;
                    var delay = _time.GetElapsedTime(_time.GetTimestamp(), wake);
                    cadenceTimer.Change(delay > TimeSpan.Zero ? delay : TimeSpan.Zero, Timeout.InfiniteTimeSpan);
                }

                ReadResult result;
                try
                {
                    result = await reader.ReadAsync(token);
                }
                catch (Exception ex) when (ex is OperationCanceledException or IOException or HttpRequestException or ObjectDisposedException)
                {
                    return await EndAsync(context, pipeline, lifetime, ex);
                }

                var buffer = result.Buffer;
                if (!buffer.IsEmpty)
                {
                    lifetime.OnUpstreamActivity();
                    pipeline.Process(buffer, output);
                }

                reader.AdvanceTo(buffer.End);
                if (pipeline.StructuredViolation is not null)
                {
                    // Structured output: the output broke its schema; stop paying for it.
                    return await EndBySchemaViolationAsync(context, pipeline, lifetime);
                }

                var heartbeatOnly = false;
                if (result.IsCanceled)
                {
                    armedFor = 0;
                    pipeline.OnDeadline(output);
                    if (heartbeatsOn && output.UnflushedBytes == 0 && _time.GetTimestamp() - lastWrite >= heartbeatTicks)
                    {
                        SseWriter.WriteComment(output, " keep-alive"u8);
                        heartbeatOnly = true;
                    }
                }

                if (result.IsCompleted)
                {
                    // The pump ends the pipe cleanly even when the upstream failed, so that what arrived before
                    // the failure is delivered first; then the failure decides how the stream ends.
                    var failure = await pump;
                    return failure is null
                        ? await CompleteAsync(context, pipeline, lifetime)
                        : await EndAsync(context, pipeline, lifetime, failure);
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
            await reader.CompleteAsync();
            await pump;
        }
    }

    /// <summary>
    /// Copies the upstream body into the pipe. A zero-byte read first, so an idle stream holds no buffer; the
    /// pipe's pause threshold stops the pump (and so the upstream, over TCP) while the client is slow.
    /// </summary>
    private static async Task<Exception?> PumpAsync(Stream source, PipeWriter writer, StreamLifetime lifetime)
    {
        Exception? failure = null;
        try
        {
            while (true)
            {
                _ = await source.ReadAsync(Memory<byte>.Empty, lifetime.Token);
                var memory = writer.GetMemory(MinimumReadSize);
                var read = await source.ReadAsync(memory, lifetime.Token);
                if (read == 0)
                {
                    break;
                }

                writer.Advance(read);
                var flushed = await writer.FlushAsync(lifetime.Token);
                if (flushed.IsCompleted)
                {
                    break;
                }
            }
        }
        catch (Exception ex)
        {
            failure = ex;
        }
        finally
        {
            await source.DisposeAsync();
            await writer.CompleteAsync();
        }

        return failure;
    }

    private async Task<StreamEndReason> CompleteAsync(HttpContext context, StreamEventPipeline pipeline, StreamLifetime lifetime)
    {
        var accounting = pipeline.Accounting;
        var output = context.Response.BodyWriter;

        // A chat stream is complete with its [DONE] (or the upstream's own error event), even when the upstream
        // closed right after the [DONE] line without the blank line; a stream Relay does not rewrite passes
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
