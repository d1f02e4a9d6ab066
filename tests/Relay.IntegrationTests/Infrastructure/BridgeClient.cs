using System.Net.WebSockets;
using System.Text;
using System.Text.Json;

namespace Relay.IntegrationTests.Infrastructure;

/// <summary>One server message of the WebSocket bridge, with the time it arrived (monotonic microseconds).</summary>
public sealed record BridgeMessage(string Text, long ReceivedUs)
{
    public JsonElement Json { get; } = JsonDocument.Parse(Text).RootElement;

    public string Type => Json.GetProperty("type").GetString()!;

    /// <summary>The <c>delta.content</c> of a <c>response.chunk</c>, or "".</summary>
    public string Content => Type == "response.chunk" ? new ReceivedEvent(Json.GetProperty("chunk").GetRawText(), ReceivedUs).Content : "";
}

/// <summary>A .NET <see cref="ClientWebSocket"/> speaking the bridge protocol (docs/websocket-protocol.md).</summary>
public sealed class BridgeClient : IAsyncDisposable
{
    private readonly ClientWebSocket _socket;

    private BridgeClient(ClientWebSocket socket) => _socket = socket;

    public ClientWebSocket Socket => _socket;

    /// <summary>
    /// Connects to <paramref name="relayUrl"/> + <paramref name="path"/>; <paramref name="headers"/> go on the upgrade
    /// request (x-mock-* knobs there apply to every response of the session, as auth headers do).
    /// </summary>
    public static async Task<BridgeClient> ConnectAsync(string relayUrl, IDictionary<string, string>? headers = null, string path = "/v1/chat/ws", params string[] subprotocols)
    {
        var socket = new ClientWebSocket();
        foreach (var (k, v) in headers ?? new Dictionary<string, string>())
        {
            socket.Options.SetRequestHeader(k, v);
        }

        foreach (var p in subprotocols)
        {
            socket.Options.AddSubProtocol(p);
        }

        await socket.ConnectAsync(new Uri("ws" + relayUrl["http".Length..] + path), CancellationToken.None);
        return new BridgeClient(socket);
    }

    /// <summary>Connects a socket the caller configured (TLS trust, ...) to <paramref name="uri"/>.</summary>
    public static async Task<BridgeClient> ConnectAsync(ClientWebSocket socket, Uri uri)
    {
        await socket.ConnectAsync(uri, CancellationToken.None);
        return new BridgeClient(socket);
    }

    public Task SendAsync(object message) => SendRawAsync(JsonSerializer.Serialize(message));

    public Task SendRawAsync(string text)
        => _socket.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, true, CancellationToken.None);

    /// <summary>The next message; null when the server closed the socket.</summary>
    public async Task<BridgeMessage?> ReceiveAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(15));
        var buffer = new byte[64 * 1024];
        using var message = new MemoryStream();
        while (true)
        {
            var result = await _socket.ReceiveAsync(buffer, cts.Token);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                return null;
            }

            message.Write(buffer, 0, result.Count);
            if (result.EndOfMessage)
            {
                return new BridgeMessage(Encoding.UTF8.GetString(message.ToArray()), SseRead.NowUs());
            }
        }
    }

    /// <summary>Messages up to and including the first of <paramref name="type"/> (for which <paramref name="until"/> holds).</summary>
    public async Task<List<BridgeMessage>> ReceiveUntilAsync(string type, Func<BridgeMessage, bool>? until = null, TimeSpan? timeout = null)
    {
        var messages = new List<BridgeMessage>();
        while (true)
        {
            var m = await ReceiveAsync(timeout) ?? throw new InvalidOperationException(
                $"the socket closed ({_socket.CloseStatus} {_socket.CloseStatusDescription}) before {type}; got: {string.Join(", ", messages.Select(x => x.Type))}");
            messages.Add(m);
            if (m.Type == type && (until is null || until(m)))
            {
                return messages;
            }
        }
    }

    public static object Create(string content = "Say something.") => new
    {
        type = "response.create",
        response = new { model = "mock", messages = new[] { new { role = "user", content } } },
    };

    public static object Append(string content) => new { type = "conversation.item.create", item = new { role = "user", content } };

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (_socket.State == WebSocketState.Open)
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await _socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "", cts.Token);
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException)
        {
        }

        _socket.Dispose();
    }
}
