using System.Buffers;
using System.Net.WebSockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Relay.Middleware.Cancellation;
using Relay.Middleware.Configuration;
using Relay.Middleware.Errors;

namespace Relay.Middleware.WebSockets;

/// <summary>
/// One WebSocket session (docs/websocket-protocol.md): the receive loop, which reads client messages and acts on
/// them, with at most one response at a time. Each response is an ordinary chat-completions request forwarded
/// through Relay's and YARP's pipeline (<see cref="BridgedResponseRunner"/>), whose event pipeline writes the
/// session's messages (after cadence, UTF-8 repair, usage).
/// </summary>
/// <remarks>
/// Only the receive loop starts, cancels and settles responses, so the conversation
/// (<see cref="WebSocketConversation"/>) needs no lock. Messages go out through one <see cref="WebSocketSendChannel"/>
/// (one send at a time, the write-stall limit, the close handshake).
/// </remarks>
internal sealed partial class WebSocketSession : IAsyncDisposable
{
    private static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 64 };

    private readonly WebSocket _socket;
    private readonly WebSocketFrameGuard _guard;
    private readonly UpstreamRequestTemplate _template;
    private readonly WebSocketBridgeOptions _options;
    private readonly ActiveStreams _streams;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _session;
    private readonly WebSocketSendChannel _send;
    private readonly BridgedResponseRunner _responder;
    private readonly WebSocketConversation _conversation = new();
    private readonly string _id = "sess_" + Guid.NewGuid().ToString("N")[..16];
    private volatile BridgedResponse? _active;
    private int _responses;

    public WebSocketSession(WebSocket socket, WebSocketFrameGuard guard, HttpContext upgrade, RequestDelegate forward,
        UpstreamRequestTemplate template, RelayOptions options, ActiveStreams streams, TimeProvider time, ILogger logger)
    {
        _socket = socket;
        _guard = guard;
        _template = template;
        _options = options.WebSocket;
        _streams = streams;
        _logger = logger;
        _session = CancellationTokenSource.CreateLinkedTokenSource(upgrade.RequestAborted);
        _send = new WebSocketSendChannel(socket, TimeSpan.FromSeconds(options.Timeouts.WriteStallSeconds),
            TimeSpan.FromSeconds(_options.CloseTimeoutSeconds), time, _session.Token);
        _responder = new BridgedResponseRunner(_send, forward, _id, logger);
    }

    /// <summary>Runs the conversation until the socket closes or fails.</summary>
    public async Task RunAsync()
    {
        using var shutdown = _streams.Stopping.UnsafeRegister(static s => _ = ((WebSocketSession)s!).ShutdownAsync(), this);
        Log.SessionStarted(_logger, _id, _socket.SubProtocol);
        await _send.SendMessageAsync(w =>
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
                    await _send.CloseAsync(WebSocketCloseStatus.MessageTooBig, "message too big");
                    continue;
                }

                if (_send.CloseSent)
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
        _send.Dispose();
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

                _conversation.ReplaceMessages(array);
                parameters.Remove("messages");
            }
        }

        if (parameters is not null)
        {
            _conversation.SetParameters(parameters);
        }

        if (_conversation.IsEmpty)
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
            _conversation.Append(item, responseRunning: true);
            active.Cancel(ResponseEnd.Interrupted);
            await SendItemCreatedAsync(item, eventId);
            await active.Completion;
            await SettleAsync();
            await StartResponseAsync(eventId);
            return;
        }

        _conversation.Append(item, responseRunning: false);
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
        _conversation.Settle(done.Text.WrittenSpan);
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

        var body = _conversation.BuildRequestBody();

        var id = $"resp_{_id[5..]}_{++_responses}";
        var response = new BridgedResponse(id, _template, body, _options.MaxSendQueueBytes, _session.Token);
        _active = response;
        response.Completion = _responder.RunAsync(response);
    }

    private Task SendItemCreatedAsync(JsonObject item, string? eventId)
        => _send.SendMessageAsync(w => WebSocketMessages.WriteItemCreated(w, item, eventId));

    private Task SendErrorAsync(string? eventId, string? responseId, string message, string type, string? code, string? param)
        => _send.SendMessageAsync(w => WebSocketMessages.WriteError(w, eventId, responseId, WebSocketMessages.ErrorObject(message, type, code, param)));

    private async Task OnClientCloseAsync()
    {
        _active?.Cancel(ResponseEnd.SessionEnded);
        if (_socket.State == WebSocketState.CloseReceived)
        {
            // Echo the client's status (RFC 6455 section 5.5.1), or 1000 when it sent none.
            var status = _socket.CloseStatus is { } s && s != WebSocketCloseStatus.Empty ? s : WebSocketCloseStatus.NormalClosure;
            await _send.CloseAsync(status, "");
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
            await _send.CloseAsync(WebSocketCloseStatus.EndpointUnavailable, "Relay is shutting down");
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
            await _send.DrainAsync(_guard.Inner);
        }

        Log.SessionEnded(_logger, _id, _responses, _socket.CloseStatus);
    }

    private static partial class Log
    {
        [LoggerMessage(500, LogLevel.Debug, "WebSocket session {SessionId} started (subprotocol {Protocol}).", EventName = "WebSocketSessionStarted")]
        public static partial void SessionStarted(ILogger logger, string sessionId, string? protocol);

        [LoggerMessage(501, LogLevel.Debug, "WebSocket session {SessionId} ended after {Responses} responses (close status {CloseStatus}).", EventName = "WebSocketSessionEnded")]
        public static partial void SessionEnded(ILogger logger, string sessionId, int responses, WebSocketCloseStatus? closeStatus);

        [LoggerMessage(502, LogLevel.Information, "WebSocket session {SessionId} failed: {Cause} (state {State}).", EventName = "WebSocketSessionFailed")]
        public static partial void SessionFailed(ILogger logger, string sessionId, string cause, WebSocketState state);

    }
}
