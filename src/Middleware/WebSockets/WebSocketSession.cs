using System.Buffers;
using System.Net.WebSockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Relay.Middleware.Accounting;
using Relay.Middleware.Cadence;
using Relay.Middleware.Cancellation;
using Relay.Middleware.Configuration;
using Relay.Middleware.Errors;
using Relay.Middleware.Requests;
using Relay.Middleware.ServerSentEvents;
using Relay.Middleware.Streaming;

namespace Relay.Middleware.WebSockets;

/// <summary>
/// One WebSocket conversation (docs/websocket-protocol.md): a receive loop that reads client messages, and at most
/// one response at a time, each an ordinary chat-completions request forwarded through Relay's and YARP's pipeline
/// whose relayed SSE events (after the stream's event pipeline: cadence, UTF-8 repair, usage) become text frames.
/// </summary>
/// <remarks>
/// Only the receive loop starts, cancels and settles responses, so the conversation needs no lock. Frames are
/// written under one send lock (a WebSocket allows one send at a time); a send that does not complete at once runs
/// against the write-stall timeout, past which the socket is aborted.
/// </remarks>
internal sealed partial class WebSocketSession : IAsyncDisposable
{
    private const int MaxErrorBodyBytes = 64 * 1024;

    private static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 64 };

    private readonly WebSocket _socket;
    private readonly WebSocketFrameGuard _guard;
    private readonly RequestDelegate _forward;
    private readonly UpstreamRequestTemplate _template;
    private readonly WebSocketBridgeOptions _options;
    private readonly TimeSpan _writeStall;
    private readonly ActiveStreams _streams;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _session;
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private readonly string _id = "sess_" + Guid.NewGuid().ToString("N")[..16];
    private readonly List<JsonNode> _conversation = [];
    private readonly List<JsonNode> _appended = [];
    private JsonObject _parameters = [];
    private volatile BridgedResponse? _active;
    private int _closeSent;
    private int _responses;

    public WebSocketSession(WebSocket socket, WebSocketFrameGuard guard, HttpContext upgrade, RequestDelegate forward,
        UpstreamRequestTemplate template, RelayOptions options, ActiveStreams streams, TimeProvider time, ILogger logger)
    {
        _socket = socket;
        _guard = guard;
        _forward = forward;
        _template = template;
        _options = options.WebSocket;
        _writeStall = TimeSpan.FromSeconds(options.Timeouts.WriteStallSeconds);
        _streams = streams;
        _time = time;
        _logger = logger;
        _session = CancellationTokenSource.CreateLinkedTokenSource(upgrade.RequestAborted);
    }

    /// <summary>Runs the conversation until the socket closes or fails.</summary>
    public async Task RunAsync()
    {
        using var shutdown = _streams.Stopping.UnsafeRegister(static s => _ = ((WebSocketSession)s!).ShutdownAsync(), this);
        Log.SessionStarted(_logger, _id, _socket.SubProtocol);
        await SendControlAsync(w =>
        {
            w.WriteString("type", "session.created");
            w.WriteStartObject("session");
            w.WriteString("id", _id);
            w.WriteString("protocol", _socket.SubProtocol);
            w.WriteNumber("max_message_bytes", _options.MaxMessageBytes);
            w.WriteEndObject();
        });

        var message = new ArrayBufferWriter<byte>(4096);
        try
        {
            while (true)
            {
                message.ResetWrittenCount();
                ValueWebSocketReceiveResult result;
                do
                {
                    result = await _socket.ReceiveAsync(message.GetMemory(4096), CancellationToken.None);
                    message.Advance(result.Count);
                }
                while (!result.EndOfMessage && result.MessageType != WebSocketMessageType.Close && message.WrittenCount <= _options.MaxMessageBytes);

                if (result.MessageType == WebSocketMessageType.Close)
                {
                    await OnClientCloseAsync();
                    break;
                }

                if (message.WrittenCount > _options.MaxMessageBytes)
                {
                    // The guard closes first when the frame headers announce the size; this catches the rest.
                    await CloseAsync(WebSocketCloseStatus.MessageTooBig, "message too big");
                    continue;
                }

                if (Volatile.Read(ref _closeSent) != 0)
                {
                    // RFC 6455 section 5.5.1: after sending a close frame, the endpoint only waits for the peer's.
                    continue;
                }

                if (result.MessageType == WebSocketMessageType.Binary)
                {
                    await SendErrorAsync(null, null, "Binary messages are not supported: send JSON text messages.", RelayErrorTypes.InvalidRequest, "unsupported_message", null);
                    continue;
                }

                await HandleMessageAsync(message.WrittenMemory);
            }
        }
        catch (Exception ex) when (ex is WebSocketException or IOException or OperationCanceledException or ObjectDisposedException)
        {
            // The socket failed: a protocol violation the WebSocket closed for (1002, 1007), a message past the
            // limit (the guard closed with 1009), a keepalive timeout, or the client vanished.
            Log.SessionFailed(_logger, _id, _guard.FailedWith?.ToString() ?? ex.GetType().Name, _socket.State);
        }
        finally
        {
            await EndAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _session.CancelAsync();
        _session.Dispose();
        _sendLock.Dispose();
    }

    private async Task HandleMessageAsync(ReadOnlyMemory<byte> bytes)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(bytes, DocumentOptions);
        }
        catch (JsonException ex)
        {
            await SendErrorAsync(null, null, $"The message is not valid JSON (line {ex.LineNumber + 1}, byte {ex.BytePositionInLine + 1}).",
                RelayErrorTypes.InvalidRequest, "invalid_json", null);
            return;
        }

        using (document)
        {
            var root = document.RootElement;

            // Read first, so that the error a malformed message causes names it too (docs/websocket-protocol.md).
            var eventId = root.ValueKind == JsonValueKind.Object && root.TryGetProperty("event_id", out var e) && e.ValueKind == JsonValueKind.String
                ? e.GetString()
                : null;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("type", out var typeElement) || typeElement.ValueKind != JsonValueKind.String)
            {
                await SendErrorAsync(eventId, null, "A message must be a JSON object with a string \"type\".", RelayErrorTypes.InvalidRequest, "invalid_message", "type");
                return;
            }

            switch (typeElement.GetString())
            {
                case "response.create":
                    await OnResponseCreateAsync(root, eventId);
                    break;
                case "conversation.item.create":
                    await OnItemCreateAsync(root, eventId);
                    break;
                case "response.cancel":
                    await OnResponseCancelAsync(eventId);
                    break;
                default:
                    await SendErrorAsync(eventId, null,
                        $"Unknown message type '{typeElement.GetString()}'. Supported: response.create, conversation.item.create, response.cancel.",
                        RelayErrorTypes.InvalidRequest, "unknown_message_type", "type");
                    break;
            }
        }
    }

    private async Task OnResponseCreateAsync(JsonElement root, string? eventId)
    {
        await SettleAsync();
        if (_active is not null)
        {
            // OpenAI realtime's code for the same mistake.
            await SendErrorAsync(eventId, _active.Id, "A response is already in progress; cancel it or append a message to cut it over.",
                RelayErrorTypes.InvalidRequest, "conversation_already_has_active_response", null);
            return;
        }

        JsonObject? parameters = null;
        if (root.TryGetProperty("response", out var response) && response.ValueKind != JsonValueKind.Null)
        {
            if (response.ValueKind != JsonValueKind.Object)
            {
                await SendErrorAsync(eventId, null, "\"response\" must be a chat completions request object.", RelayErrorTypes.InvalidRequest, "invalid_value", "response");
                return;
            }

            parameters = JsonObject.Create(response.Clone());
            if (parameters!["messages"] is { } messages)
            {
                if (messages is not JsonArray array || array.Any(static m => m is not JsonObject))
                {
                    await SendErrorAsync(eventId, null, "\"response.messages\" must be an array of message objects.", RelayErrorTypes.InvalidRequest, "invalid_value", "response.messages");
                    return;
                }

                // A request with messages is self-contained: it replaces the conversation, as an HTTP request would.
                _conversation.Clear();
                foreach (var m in array)
                {
                    _conversation.Add(m!.DeepClone());
                }

                parameters.Remove("messages");
            }
        }

        if (parameters is not null)
        {
            _parameters = parameters;
        }

        if (_conversation.Count == 0)
        {
            await SendErrorAsync(eventId, null, "The conversation is empty: send messages in response.create or append items first.",
                RelayErrorTypes.InvalidRequest, "empty_conversation", "response.messages");
            return;
        }

        await StartResponseAsync(eventId);
    }

    private async Task OnItemCreateAsync(JsonElement root, string? eventId)
    {
        if (!root.TryGetProperty("item", out var itemElement) || itemElement.ValueKind != JsonValueKind.Object
            || !itemElement.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String)
        {
            await SendErrorAsync(eventId, null, "\"item\" must be a chat message object with a \"role\".", RelayErrorTypes.InvalidRequest, "invalid_value", "item");
            return;
        }

        var item = JsonObject.Create(itemElement.Clone())!;
        // Realtime-style items carry "type": "message" (and maybe an id); a chat message has neither.
        item.Remove("type");
        item.Remove("id");
        await SettleAsync();
        var active = _active;
        if (active is not null)
        {
            // Cut-over: the generation stops at once; the new request continues from what was delivered.
            _appended.Add(item);
            active.Cancel(ResponseEnd.Interrupted);
            await SendItemCreatedAsync(item, eventId);
            await active.Completion;
            await SettleAsync();
            await StartResponseAsync(eventId);
            return;
        }

        _conversation.Add(item);
        await SendItemCreatedAsync(item, eventId);
    }

    private async Task OnResponseCancelAsync(string? eventId)
    {
        await SettleAsync();
        var active = _active;
        if (active is null)
        {
            await SendErrorAsync(eventId, null, "No response is in progress.", RelayErrorTypes.InvalidRequest, "response_cancel_not_active", null);
            return;
        }

        active.Cancel(ResponseEnd.Cancelled);
        await active.Completion;
        await SettleAsync();
    }

    /// <summary>
    /// Folds a finished response into the conversation: the assistant's reply as delivered, then the messages
    /// appended while it ran (so a cut-over request reads: original messages, partial reply, appended messages).
    /// </summary>
    private async Task SettleAsync()
    {
        if (_active is not { Finishing: true } done)
        {
            return;
        }

        await done.Completion;

        if (done.Text.Length > 0)
        {
            _conversation.Add(new JsonObject { ["role"] = "assistant", ["content"] = System.Text.Encoding.UTF8.GetString(done.Text.WrittenSpan) });
        }

        _conversation.AddRange(_appended);
        _appended.Clear();
        _active = null;
        done.Dispose();
    }

    private async Task StartResponseAsync(string? eventId)
    {
        if (_streams.Draining)
        {
            await SendErrorAsync(eventId, null, "Relay is shutting down and starts no new responses.", RelayErrorTypes.RelayShutdown, "relay_shutdown", null);
            return;
        }

        var request = new JsonObject();
        foreach (var (key, value) in _parameters)
        {
            if (key is not ("messages" or "stream"))
            {
                request[key] = value?.DeepClone();
            }
        }

        request["stream"] = true;
        request["messages"] = new JsonArray([.. _conversation.Select(static m => m.DeepClone())]);
        var body = ToBytes(w => request.WriteTo(w));

        var id = $"resp_{_id[5..]}_{++_responses}";
        var response = new BridgedResponse(id, _template, body, _options.MaxSendQueueBytes, _session.Token);
        _active = response;
        response.Completion = RunResponseAsync(response);
    }

    private async Task RunResponseAsync(BridgedResponse response)
    {
        try
        {
            await SendControlAsync(w =>
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
            Log.ForwardFailed(_logger, _id, ex);
            response.Error = ErrorObject("Relay failed to process the request.", RelayErrorTypes.ServerError, "relay_error");
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

    /// <summary>Reads the bridged response's body and sends it as frames: each relayed SSE event becomes one message.</summary>
    private async Task PumpAsync(BridgedResponse response)
    {
        var reader = response.Output.Reader;
        using var parser = new IncrementalSseParser();
        bool? eventStream = null;
        var errorBody = new ArrayBufferWriter<byte>();
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
                    foreach (var segment in buffer)
                    {
                        if (eventStream == true)
                        {
                            parser.Append(segment.Span);
                            while (parser.TryRead(out var kind))
                            {
                                if (kind == SseItemKind.Event && BuildEventFrame(response, parser))
                                {
                                    await SendAsync(response.Frame.WrittenMemory);
                                }
                            }
                        }
                        else if (errorBody.WrittenCount < MaxErrorBodyBytes)
                        {
                            errorBody.Write(segment.Span[..Math.Min(segment.Length, MaxErrorBodyBytes - errorBody.WrittenCount)]);
                        }
                    }
                }

                reader.AdvanceTo(buffer.End);
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

    /// <summary>
    /// Builds the frame of one relayed event: a chunk as <c>response.chunk</c> (its JSON byte for byte), an error
    /// object as <c>error</c>, anything else as <c>response.event</c>. <c>[DONE]</c> becomes <c>response.done</c> later.
    /// </summary>
    private static bool BuildEventFrame(BridgedResponse response, IncrementalSseParser parser)
    {
        var data = parser.Data;
        var frame = response.Frame;
        frame.ResetWrittenCount();
        if (parser.EventType.IsEmpty && data.SequenceEqual("[DONE]"u8))
        {
            return false;
        }

        if (parser.EventType.IsEmpty && ChatChunkReader.TryRead(data, out var info))
        {
            if (info.HasError && TryWriteError(frame, response.Id, data, out var error))
            {
                response.Error ??= error;
                return true;
            }

            if (info.ChoiceCount == 1 && info.ChoiceIndex == 0 && info.Content.IsPresent)
            {
                LenientJsonStringDecoder.Decode(info.Content.Inner(data), ref response.Carry, response.Text);
            }

            frame.Write("{\"type\":\"response.chunk\",\"response_id\":\""u8);
            frame.Write(System.Text.Encoding.ASCII.GetBytes(response.Id));
            frame.Write("\",\"chunk\":"u8);
            frame.Write(data);
            frame.Write("}"u8);
            return true;
        }

        using var writer = new Utf8JsonWriter(frame);
        writer.WriteStartObject();
        writer.WriteString("type", "response.event");
        writer.WriteString("response_id", response.Id);
        if (parser.EventType.IsEmpty)
        {
            writer.WriteNull("event");
        }
        else
        {
            writer.WriteString("event", parser.EventType);
        }

        writer.WriteString("data", data);
        writer.WriteEndObject();
        return true;
    }

    private static bool TryWriteError(ArrayBufferWriter<byte> frame, string responseId, ReadOnlySpan<byte> data, out byte[]? error)
    {
        error = null;
        using var document = JsonDocument.Parse(data.ToArray());
        if (!document.RootElement.TryGetProperty("error", out var errorElement))
        {
            return false;
        }

        var element = errorElement;
        error = ToBytes(w => element.WriteTo(w));
        using var writer = new Utf8JsonWriter(frame);
        writer.WriteStartObject();
        writer.WriteString("type", "error");
        writer.WriteString("response_id", responseId);
        writer.WritePropertyName("error");
        errorElement.WriteTo(writer);
        writer.WriteEndObject();
        return true;
    }

    /// <summary>The upstream (or Relay, before the first byte) answered with an error instead of a stream.</summary>
    private async Task SendErrorResponseAsync(BridgedResponse response, ReadOnlyMemory<byte> body)
    {
        var status = response.Context.Response.StatusCode;
        byte[]? error = null;
        try
        {
            using var document = JsonDocument.Parse(body);
            if (document.RootElement.ValueKind == JsonValueKind.Object && document.RootElement.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.Object)
            {
                var element = e;
                error = ToBytes(w => element.WriteTo(w));
            }
        }
        catch (JsonException)
        {
        }

        response.Error = error ?? (status is >= 200 and < 300
            ? ErrorObject("The upstream answered without an event stream.", RelayErrorTypes.UpstreamError, "upstream_not_streaming")
            : ErrorObject($"The upstream answered with HTTP status {status}.", RelayErrorTypes.UpstreamError, "upstream_error"));
        await SendControlAsync(w =>
        {
            w.WriteString("type", "error");
            w.WriteString("response_id", response.Id);
            w.WriteNumber("status", status);
            w.WritePropertyName("error");
            w.WriteRawValue(response.Error);
        });
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
                => ("failed", StreamAccountingRecorder.ReasonName(reason == StreamEndReason.None ? StreamEndReason.UpstreamError : reason)),
            _ => ("completed", null),
        };

        if (status == "failed" && response.Error is null)
        {
            var (message, type, code) = reason == StreamEndReason.WriteStallTimeout
                ? ("The client read nothing for the write-stall time; the response was cancelled.", RelayErrorTypes.Timeout, "write_stall_timeout")
                : SseStreamRelay.Describe(reason, null);
            response.Error = ErrorObject(message, type, code);
        }

        if (response.Carry.HighSurrogate != 0 || response.Carry.ByteCount > 0)
        {
            LenientJsonStringDecoder.FlushCarryAsReplacement(ref response.Carry, response.Text);
        }

        var requestId = response.Context.Response.Headers["x-request-id"].ToString() is { Length: > 0 } openAiId
            ? openAiId
            : response.Context.Response.Headers["x-mock-request-id"].ToString();
        return SendControlAsync(w =>
        {
            w.WriteString("type", "response.done");
            w.WriteStartObject("response");
            w.WriteString("id", response.Id);
            w.WriteString("status", status);
            if (detail is null)
            {
                w.WriteNull("status_details");
            }
            else
            {
                w.WriteStartObject("status_details");
                w.WriteString("reason", detail);
                if (response.Error is { } error && status == "failed")
                {
                    w.WritePropertyName("error");
                    w.WriteRawValue(error);
                }

                w.WriteEndObject();
            }

            w.WriteString("output_text", response.Text.WrittenSpan);
            w.WriteStartObject("usage");
            WriteNullable(w, "prompt_tokens", usage?.PromptTokens);
            var completion = usage?.CompletionTokensGenerated ?? 0;
            w.WriteNumber("completion_tokens", completion);
            WriteNullable(w, "total_tokens", usage?.PromptTokens + completion);
            w.WriteNumber("completion_tokens_delivered", usage?.CompletionTokensDelivered ?? 0);
            w.WriteBoolean("completion_tokens_counted", usage?.CompletionTokensCounted ?? true);
            w.WriteEndObject();
            w.WriteStartObject("upstream");
            w.WriteNumber("status", httpStatus);
            if (requestId.Length > 0)
            {
                w.WriteString("request_id", requestId);
            }
            else
            {
                w.WriteNull("request_id");
            }

            w.WriteEndObject();
            w.WriteEndObject();
        });
    }

    private Task SendItemCreatedAsync(JsonObject item, string? eventId) => SendControlAsync(w =>
    {
        w.WriteString("type", "conversation.item.created");
        if (eventId is not null)
        {
            w.WriteString("event_id", eventId);
        }

        w.WritePropertyName("item");
        item.WriteTo(w);
    });

    private Task SendErrorAsync(string? eventId, string? responseId, string message, string type, string? code, string? param) => SendControlAsync(w =>
    {
        w.WriteString("type", "error");
        if (eventId is not null)
        {
            w.WriteString("event_id", eventId);
        }

        if (responseId is not null)
        {
            w.WriteString("response_id", responseId);
        }

        w.WritePropertyName("error");
        w.WriteRawValue(ErrorObject(message, type, code, param));
    });

    private static byte[] ErrorObject(string message, string type, string? code, string? param = null)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        OpenAIError.WriteObject(buffer, message, type, code, param);
        // WriteObject writes the envelope {"error":{...}}: keep the inner object.
        using var document = JsonDocument.Parse(buffer.WrittenMemory);
        var error = document.RootElement.GetProperty("error");
        return ToBytes(w => error.WriteTo(w));
    }

    private static byte[] ToBytes(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            write(writer);
        }

        return buffer.WrittenSpan.ToArray();
    }

    private static void WriteNullable(Utf8JsonWriter writer, string name, long? value)
    {
        if (value is { } v)
        {
            writer.WriteNumber(name, v);
        }
        else
        {
            writer.WriteNull(name);
        }
    }

    private static string? MediaType(string? contentType)
        => contentType is null ? null : contentType.Split(';', 2)[0].Trim();

    /// <summary>Writes one server message (a JSON object) and sends it.</summary>
    private async Task SendControlAsync(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            writer.WriteStartObject();
            write(writer);
            writer.WriteEndObject();
        }

        await SendAsync(buffer.WrittenMemory);
    }

    /// <summary>
    /// Sends one text message. A send that does not complete at once (the client is not reading) gets the
    /// write-stall time, then the socket is aborted, as an SSE client that stalls is dropped.
    /// </summary>
    private async Task SendAsync(ReadOnlyMemory<byte> message)
    {
        await _sendLock.WaitAsync(_session.Token);
        try
        {
            if (Volatile.Read(ref _closeSent) != 0)
            {
                return;
            }

            var send = _socket.SendAsync(message, WebSocketMessageType.Text, endOfMessage: true, CancellationToken.None);
            if (send.IsCompletedSuccessfully)
            {
                return;
            }

            try
            {
                await (_writeStall > TimeSpan.Zero ? send.AsTask().WaitAsync(_writeStall, _time, _session.Token) : send.AsTask().WaitAsync(_session.Token));
            }
            catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
            {
                _socket.Abort();
                throw new WebSocketException(WebSocketError.ConnectionClosedPrematurely, "The client stopped reading.");
            }
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <summary>Sends a close frame (once) and gives the client the close timeout to answer with its own.</summary>
    private async Task CloseAsync(WebSocketCloseStatus status, string description)
    {
        await _sendLock.WaitAsync(_session.Token);
        try
        {
            if (Interlocked.Exchange(ref _closeSent, 1) != 0)
            {
                return;
            }

            await _socket.CloseOutputAsync(status, description, _session.Token);
        }
        finally
        {
            _sendLock.Release();
        }

        _ = AbortAfterCloseTimeoutAsync();
    }

    private async Task AbortAfterCloseTimeoutAsync()
    {
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(_options.CloseTimeoutSeconds), _time, _session.Token);
            _socket.Abort();
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task OnClientCloseAsync()
    {
        _active?.Cancel(ResponseEnd.SessionEnded);
        if (_socket.State == WebSocketState.CloseReceived)
        {
            // Echo the client's status (RFC 6455 section 5.5.1), or 1000 when it sent none.
            var status = _socket.CloseStatus is { } s && s != WebSocketCloseStatus.Empty ? s : WebSocketCloseStatus.NormalClosure;
            await CloseAsync(status, "");
        }
    }

    /// <summary>Shutdown: the response in flight drains like any stream (or ends with relay_shutdown); then 1001.</summary>
    private async Task ShutdownAsync()
    {
        try
        {
            if (_active is { } active)
            {
                await active.Completion;
            }

            await SendErrorAsync(null, null, "Relay is shutting down.", RelayErrorTypes.RelayShutdown, "relay_shutdown", null);
            await CloseAsync(WebSocketCloseStatus.EndpointUnavailable, "Relay is shutting down");
        }
        catch (Exception ex) when (ex is WebSocketException or IOException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    private async Task EndAsync()
    {
        // An abrupt disconnect (or any end) cancels the upstream of the response in flight at once.
        var active = _active;
        active?.Cancel(ResponseEnd.SessionEnded);
        await _session.CancelAsync();
        if (active is not null)
        {
            await active.Completion;
            active.Dispose();
        }

        if (_guard.FailedWith is not null)
        {
            await DrainAsync();
        }

        Log.SessionEnded(_logger, _id, _responses, _socket.CloseStatus);
    }

    /// <summary>After the guard failed the connection, read what the client still sends (its close frame) for a moment, so closing the TCP connection does not reset it before the client read the close frame.</summary>
    private async Task DrainAsync()
    {
        var buffer = ArrayPool<byte>.Shared.Rent(4096);
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(_options.CloseTimeoutSeconds), _time);
            while (await _guard.Inner.ReadAsync(buffer, timeout.Token) > 0)
            {
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException)
        {
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(500, LogLevel.Debug, "WebSocket session {SessionId} started (subprotocol {Protocol}).", EventName = "WebSocketSessionStarted")]
        public static partial void SessionStarted(ILogger logger, string sessionId, string? protocol);

        [LoggerMessage(501, LogLevel.Debug, "WebSocket session {SessionId} ended after {Responses} responses (close status {CloseStatus}).", EventName = "WebSocketSessionEnded")]
        public static partial void SessionEnded(ILogger logger, string sessionId, int responses, WebSocketCloseStatus? closeStatus);

        [LoggerMessage(502, LogLevel.Information, "WebSocket session {SessionId} failed: {Cause} (state {State}).", EventName = "WebSocketSessionFailed")]
        public static partial void SessionFailed(ILogger logger, string sessionId, string cause, WebSocketState state);

        [LoggerMessage(503, LogLevel.Error, "WebSocket session {SessionId}: forwarding a response failed.", EventName = "WebSocketForwardFailed")]
        public static partial void ForwardFailed(ILogger logger, string sessionId, Exception exception);
    }
}
