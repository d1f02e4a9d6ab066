using System.Buffers;
using System.Net.WebSockets;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Relay.Middleware.WebSockets;

/// <summary>
/// The sending side of one WebSocket session: one message at a time under a lock (a WebSocket allows one send at a
/// time), the write-stall limit on a send the client does not take, the close handshake (RFC 6455 section 5.5.1),
/// and the drain of what the client still sends after a failed connection.
/// </summary>
internal sealed class WebSocketSendChannel : IDisposable
{
    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private readonly WebSocket _socket;
    private readonly TimeSpan _writeStall;
    private readonly TimeSpan _closeTimeout;
    private readonly TimeProvider _time;
    private readonly CancellationToken _session;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private int _closeSent;

    public WebSocketSendChannel(WebSocket socket, TimeSpan writeStall, TimeSpan closeTimeout, TimeProvider time, CancellationToken session)
    {
        _socket = socket;
        _writeStall = writeStall;
        _closeTimeout = closeTimeout;
        _time = time;
        _session = session;
    }

    /// <summary>Whether Relay sent its close frame: after that it sends nothing more, and only waits for the client's.</summary>
    public bool CloseSent => Volatile.Read(ref _closeSent) != 0;

    /// <summary>Writes one server message (a JSON object; <paramref name="write"/> writes its members) and sends it.</summary>
    public async Task SendMessageAsync(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
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
    public async Task SendAsync(ReadOnlyMemory<byte> message)
    {
        await _lock.WaitAsync(_session);
        try
        {
            if (CloseSent)
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
                await (_writeStall > TimeSpan.Zero ? send.AsTask().WaitAsync(_writeStall, _time, _session) : send.AsTask().WaitAsync(_session));
            }
            catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
            {
                _socket.Abort();
                throw new WebSocketException(WebSocketError.ConnectionClosedPrematurely, "The client stopped reading.");
            }
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Sends a close frame (once) and gives the client the close timeout to answer with its own.</summary>
    public async Task CloseAsync(WebSocketCloseStatus status, string description)
    {
        await _lock.WaitAsync(_session);
        try
        {
            if (Interlocked.Exchange(ref _closeSent, 1) != 0)
            {
                return;
            }

            await _socket.CloseOutputAsync(status, description, _session);
        }
        finally
        {
            _lock.Release();
        }

        _ = AbortAfterCloseTimeoutAsync();
    }

    /// <summary>
    /// After the frame guard failed the connection, reads what the client still sends (its close frame) for a moment,
    /// so that closing the TCP connection does not reset it before the client read the close frame.
    /// </summary>
    public async Task DrainAsync(Stream connection)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(4096);
        try
        {
            using var timeout = new CancellationTokenSource(_closeTimeout, _time);
            while (await connection.ReadAsync(buffer, timeout.Token) > 0)
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

    public void Dispose() => _lock.Dispose();

    private async Task AbortAfterCloseTimeoutAsync()
    {
        try
        {
            await Task.Delay(_closeTimeout, _time, _session);
            _socket.Abort();
        }
        catch (OperationCanceledException)
        {
        }
    }
}
