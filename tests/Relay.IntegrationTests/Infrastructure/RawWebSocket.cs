using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Relay.IntegrationTests.Infrastructure;

/// <summary>One frame a server sent (servers do not mask).</summary>
public sealed record RawFrame(bool Fin, int Opcode, byte[] Payload)
{
    public int? CloseCode => Opcode == 8 && Payload.Length >= 2 ? BinaryPrimitives.ReadUInt16BigEndian(Payload) : null;

    public string Text => Encoding.UTF8.GetString(Payload);
}

/// <summary>
/// A WebSocket client over a plain TCP socket that writes whatever bytes a test gives it: for conformance cases a
/// real client library refuses to produce (bad opcodes, reserved bits, invalid UTF-8, lying lengths).
/// </summary>
public sealed class RawWebSocket : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private readonly NetworkStream _stream;
    private readonly List<byte> _pending = [];

    private RawWebSocket(TcpClient tcp)
    {
        _tcp = tcp;
        _stream = tcp.GetStream();
    }

    /// <summary>Opens the socket (RFC 6455 section 4.1 handshake) and returns it with the response head.</summary>
    public static async Task<(RawWebSocket Socket, string Head)> ConnectAsync(string relayUrl, string path = "/v1/chat/ws", string extraHeaders = "")
    {
        var uri = new Uri(relayUrl);
        var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, uri.Port);
        var socket = new RawWebSocket(tcp);
        var key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));
        var request = $"GET {path} HTTP/1.1\r\nHost: {uri.Authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + $"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extraHeaders}\r\n";
        await socket._stream.WriteAsync(Encoding.ASCII.GetBytes(request));
        var head = await socket.ReadHeadAsync();
        return (socket, head);
    }

    public Task WriteAsync(byte[] bytes) => _stream.WriteAsync(bytes).AsTask();

    /// <summary>The next frame, or null at the end of the connection (or after <paramref name="timeout"/>).</summary>
    public async Task<RawFrame?> ReadFrameAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        try
        {
            if (!await FillAsync(2, cts.Token))
            {
                return null;
            }

            var len7 = _pending[1] & 0x7F;
            var headerLength = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
            if (!await FillAsync(headerLength, cts.Token))
            {
                return null;
            }

            var header = _pending.GetRange(0, headerLength).ToArray();
            long length = len7 == 126 ? BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(2)) : len7 == 127 ? BinaryPrimitives.ReadInt64BigEndian(header.AsSpan(2)) : len7;
            if (!await FillAsync(headerLength + (int)length, cts.Token))
            {
                return null;
            }

            var payload = _pending.GetRange(headerLength, (int)length).ToArray();
            _pending.RemoveRange(0, headerLength + (int)length);
            return new RawFrame((header[0] & 0x80) != 0, header[0] & 0x0F, payload);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            return null;
        }
    }

    /// <summary>Frames until the server's close frame (returned) or the end of the connection (null).</summary>
    public async Task<RawFrame?> ReadUntilCloseAsync(List<RawFrame>? others = null)
    {
        while (await ReadFrameAsync() is { } frame)
        {
            if (frame.Opcode == 8)
            {
                return frame;
            }

            others?.Add(frame);
        }

        return null;
    }

    /// <summary>A masked client frame (RFC 6455 section 5.3: every client frame is masked).</summary>
    public static byte[] ClientFrame(int opcode, ReadOnlySpan<byte> payload, bool fin = true)
    {
        var output = new List<byte> { (byte)((fin ? 0x80 : 0) | opcode) };
        if (payload.Length < 126)
        {
            output.Add((byte)(0x80 | payload.Length));
        }
        else if (payload.Length <= ushort.MaxValue)
        {
            output.Add(0x80 | 126);
            output.Add((byte)(payload.Length >> 8));
            output.Add((byte)payload.Length);
        }
        else
        {
            output.Add(0x80 | 127);
            var length = new byte[8];
            BinaryPrimitives.WriteInt64BigEndian(length, payload.Length);
            output.AddRange(length);
        }

        var key = RandomNumberGenerator.GetBytes(4);
        output.AddRange(key);
        for (var i = 0; i < payload.Length; i++)
        {
            output.Add((byte)(payload[i] ^ key[i % 4]));
        }

        return [.. output];
    }

    private async Task<string> ReadHeadAsync()
    {
        using var cts = new CancellationTokenSource(Deadline.Default);
        while (true)
        {
            var text = Encoding.ASCII.GetString([.. _pending]);
            var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (end >= 0)
            {
                _pending.RemoveRange(0, end + 4);
                return text[..end];
            }

            if (!await FillAsync(_pending.Count + 1, cts.Token))
            {
                return text;
            }
        }
    }

    private async Task<bool> FillAsync(int count, CancellationToken ct)
    {
        var buffer = new byte[4096];
        while (_pending.Count < count)
        {
            var n = await _stream.ReadAsync(buffer, ct);
            if (n == 0)
            {
                return false;
            }

            _pending.AddRange(buffer.AsSpan(0, n).ToArray());
        }

        return true;
    }

    public ValueTask DisposeAsync()
    {
        _tcp.Dispose();
        return ValueTask.CompletedTask;
    }
}
