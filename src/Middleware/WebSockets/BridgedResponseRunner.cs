using System.Buffers;
using System.Net.WebSockets;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Relay.Middleware.Accounting;
using Relay.Middleware.Cancellation;
using Relay.Middleware.Errors;
using Relay.Middleware.Requests;
using Relay.Middleware.Streaming;

namespace Relay.Middleware.WebSockets;

/// <summary>
/// Runs the responses of one WebSocket session: each an ordinary chat-completions request forwarded through Relay's
/// and YARP's pipeline, whose stream's event pipeline writes the session's messages (<see cref="WebSocketFrameSink"/>).
/// Sends <c>response.created</c>, each message as one text frame, an error response as one <c>error</c>, and
/// <c>response.done</c> with the usage of the response's StreamEnded record.
/// </summary>
internal sealed partial class BridgedResponseRunner
{
    private const int MaxErrorBodyBytes = 64 * 1024;

    private readonly WebSocketSendChannel _send;
    private readonly RequestDelegate _forward;
    private readonly string _sessionId;
    private readonly ILogger _logger;

    public BridgedResponseRunner(WebSocketSendChannel send, RequestDelegate forward, string sessionId, ILogger logger)
    {
        _send = send;
        _forward = forward;
        _sessionId = sessionId;
        _logger = logger;
    }

    /// <summary>Runs the response; completes after <c>response.done</c> was sent (or could not be).</summary>
    public async Task RunAsync(BridgedResponse response)
    {
        try
        {
            await _send.SendMessageAsync(w =>
            {
                w.WriteString("type", "response.created");
                w.WriteStartObject("response");
                w.WriteString("id", response.Id);
                w.WriteString("status", "in_progress");
                w.WriteEndObject();
            });

            var forwarding = ForwardAsync(response);
            await PumpAsync(response);
            await forwarding;
            response.Finishing = true;
            if (response.End != ResponseEnd.SessionEnded)
            {
                await SendDoneAsync(response);
            }
        }
        catch (Exception ex) when (ex is WebSocketException or IOException or OperationCanceledException or ObjectDisposedException)
        {
            // The socket is gone: the upstream is cancelled by the session's token.
            response.Cancel(ResponseEnd.SessionEnded);
        }
        finally
        {
            response.Finishing = true;
        }
    }

    /// <summary>The bridged request, through Relay's step and YARP's pipeline, as any SSE request goes.</summary>
    private async Task ForwardAsync(BridgedResponse response)
    {
        try
        {
            await _forward(response.Context);
        }
        catch (Exception ex) when (!response.Output.HasStarted)
        {
            Log.ForwardFailed(_logger, _sessionId, ex);
            response.Error = WebSocketMessages.ErrorObject("Relay failed to process the request.", RelayErrorTypes.ServerError, "relay_error");
        }
        finally
        {
            if (response.Context.Features.Get<RelayRequestFeature>()?.Lifetime.Reason == StreamEndReason.WriteStallTimeout)
            {
                // The client took nothing for the write-stall time: what is queued for it is dropped.
                response.Discard = true;
                response.Output.Reader.CancelPendingRead();
            }

            await response.Output.EndAsync();
        }
    }

    /// <summary>
    /// Reads the bridged response's body and sends it: an event stream's messages, which the response's
    /// <see cref="WebSocketFrameSink"/> wrote, one text frame each; any other body (an error) is kept for one
    /// <c>error</c> message.
    /// </summary>
    private async Task PumpAsync(BridgedResponse response)
    {
        var reader = response.Output.Reader;
        bool? eventStream = null;
        var errorBody = new ArrayBufferWriter<byte>();
        var message = new ArrayBufferWriter<byte>(4096);
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync();
                if (result.IsCanceled && response.Discard)
                {
                    break;
                }

                var buffer = result.Buffer;
                if (!buffer.IsEmpty)
                {
                    // Status and headers are set before the first body byte is written.
                    eventStream ??= response.Context.Response.StatusCode is >= 200 and < 300
                        && SseResponseTransform.IsEventStream(MediaType(response.Context.Response.ContentType));
                }

                if (eventStream == true)
                {
                    while (WebSocketFrameSink.TryReadMessage(ref buffer, out var frame))
                    {
                        message.ResetWrittenCount();
                        foreach (var segment in frame)
                        {
                            message.Write(segment.Span);
                        }

                        await _send.SendAsync(message.WrittenMemory);
                    }
                }
                else
                {
                    foreach (var segment in buffer)
                    {
                        if (errorBody.WrittenCount < MaxErrorBodyBytes)
                        {
                            errorBody.Write(segment.Span[..Math.Min(segment.Length, MaxErrorBodyBytes - errorBody.WrittenCount)]);
                        }
                    }

                    buffer = buffer.Slice(buffer.End);
                }

                reader.AdvanceTo(buffer.Start, buffer.End);
                if (result.IsCompleted)
                {
                    break;
                }
            }
        }
        finally
        {
            await reader.CompleteAsync();
        }

        if (eventStream != true && response.End == ResponseEnd.None && response.Error is null)
        {
            await SendErrorResponseAsync(response, errorBody.WrittenMemory);
        }
    }

    /// <summary>The upstream (or Relay, before the first byte) answered with an error instead of a stream.</summary>
    private async Task SendErrorResponseAsync(BridgedResponse response, ReadOnlyMemory<byte> body)
    {
        var status = response.Context.Response.StatusCode;
        var error = WebSocketMessages.ErrorObjectOf(body.Span);
        response.Error = error ?? (status is >= 200 and < 300
            ? WebSocketMessages.ErrorObject("The upstream answered without an event stream.", RelayErrorTypes.UpstreamError, "upstream_not_streaming")
            : WebSocketMessages.ErrorObject($"The upstream answered with HTTP status {status}.", RelayErrorTypes.UpstreamError, "upstream_error"));
        await _send.SendMessageAsync(w => WebSocketMessages.WriteError(w, null, response.Id, response.Error, status));
    }

    private Task SendDoneAsync(BridgedResponse response)
    {
        var feature = response.Context.Features.Get<RelayRequestFeature>();
        var reason = feature?.Lifetime.Reason ?? StreamEndReason.None;
        // The figures of the response's StreamEnded record, so response.done and the accounting agree (none when
        // no event stream was relayed: an error response).
        var usage = response.Context.Features.Get<StreamUsageRecord>();
        var httpStatus = response.Context.Response.StatusCode;
        var (status, detail) = response.End switch
        {
            ResponseEnd.Interrupted => ("interrupted", "client_appended"),
            ResponseEnd.Cancelled => ("cancelled", "client_cancelled"),
            _ when response.Error is not null || httpStatus is < 200 or >= 300 || reason is not (StreamEndReason.Completed or StreamEndReason.None)
                => ("failed", RelayErrorTable.EndReasonName(reason == StreamEndReason.None ? StreamEndReason.UpstreamError : reason)),
            _ => ("completed", null),
        };

        if (status == "failed" && response.Error is null)
        {
            var error = RelayErrorTable.ForFailedEnd(reason);
            response.Error = WebSocketMessages.ErrorObject(error.Message, error.Type, error.Code);
        }

        var requestId = response.Context.Response.Headers["x-request-id"].ToString() is { Length: > 0 } openAiId
            ? openAiId
            : response.Context.Response.Headers["x-mock-request-id"].ToString();
        return _send.SendMessageAsync(w => WebSocketMessages.WriteResponseDone(w, response, status, detail, usage, httpStatus, requestId));
    }

    private static string? MediaType(string? contentType)
        => contentType is null ? null : contentType.Split(';', 2)[0].Trim();

    private static partial class Log
    {
        [LoggerMessage(503, LogLevel.Error, "WebSocket session {SessionId}: forwarding a response failed.", EventName = "WebSocketForwardFailed")]
        public static partial void ForwardFailed(ILogger logger, string sessionId, Exception exception);
    }
}
