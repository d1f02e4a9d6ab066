using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Relay.IntegrationTests.Infrastructure;

/// <summary>
/// A bare HTTP/2 (prior knowledge) client over a socket, for what HttpClient cannot do: a client that never opens its
/// flow-control window (SETTINGS_INITIAL_WINDOW_SIZE 0, no WINDOW_UPDATE), so the server can send it no DATA at all.
/// One request, on stream 1.
/// </summary>
public sealed class RawHttp2Client : IAsyncDisposable
{
    private const byte Data = 0x0, Headers = 0x1, RstStream = 0x3, Settings = 0x4, GoAway = 0x7;
    private const byte EndStream = 0x1, EndHeaders = 0x4, Ack = 0x1;

    private readonly TcpClient _tcp;
    private readonly NetworkStream _stream;

    private RawHttp2Client(TcpClient tcp)
    {
        _tcp = tcp;
        _stream = tcp.GetStream();
    }

    /// <summary>DATA payload bytes received on stream 1.</summary>
    public long DataBytes { get; private set; }

    /// <summary>Whether the response's HEADERS arrived on stream 1 (HEADERS are not flow-controlled).</summary>
    public bool HeadersReceived { get; private set; }

    public static async Task<RawHttp2Client> ConnectWithClosedWindowAsync(int port)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, port);
        var client = new RawHttp2Client(tcp);
        await client._stream.WriteAsync("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray());
        var settings = new byte[6];
        BinaryPrimitives.WriteUInt16BigEndian(settings, 0x4); // SETTINGS_INITIAL_WINDOW_SIZE
        BinaryPrimitives.WriteUInt32BigEndian(settings.AsSpan(2), 0);
        await client.WriteFrameAsync(Settings, 0, 0, settings);
        return client;
    }

    /// <summary>Sends a POST with a body on stream 1.</summary>
    public async Task PostAsync(string path, string body, IDictionary<string, string> headers)
    {
        var block = new MemoryStream();
        foreach (var (name, value) in new Dictionary<string, string> { [":method"] = "POST", [":scheme"] = "http", [":path"] = path, [":authority"] = "relay", ["content-type"] = "application/json" }.Concat(headers))
        {
            // HPACK literal header field without indexing, new name, no Huffman (RFC 7541, section 6.2.2).
            block.WriteByte(0);
            WriteString(block, name.ToLowerInvariant());
            WriteString(block, value);
        }

        await WriteFrameAsync(Headers, EndHeaders, 1, block.ToArray());
        await WriteFrameAsync(Data, EndStream, 1, Encoding.UTF8.GetBytes(body));
    }

    /// <summary>Reads frames until <paramref name="until"/> holds or the connection ends; acknowledges SETTINGS, never opens a window.</summary>
    public async Task ReadUntilAsync(Func<bool> until, CancellationToken cancellationToken)
    {
        var head = new byte[9];
        while (!until())
        {
            await _stream.ReadExactlyAsync(head, cancellationToken);
            var length = (head[0] << 16) | (head[1] << 8) | head[2];
            var payload = new byte[length];
            await _stream.ReadExactlyAsync(payload, cancellationToken);
            var streamId = BinaryPrimitives.ReadUInt32BigEndian(head.AsSpan(5)) & 0x7fffffff;
            switch (head[3])
            {
                case Settings when (head[4] & Ack) == 0:
                    await WriteFrameAsync(Settings, Ack, 0, []);
                    break;
                case Headers when streamId == 1:
                    HeadersReceived = true;
                    break;
                case Data when streamId == 1:
                    DataBytes += length;
                    break;
                case RstStream or GoAway:
                    return;
            }
        }
    }

    /// <summary>Resets stream 1 (CANCEL), as a client that gives up does.</summary>
    public Task ResetAsync()
    {
        var code = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(code, 0x8);
        return WriteFrameAsync(RstStream, 0, 1, code);
    }

    public ValueTask DisposeAsync()
    {
        _tcp.Dispose();
        return ValueTask.CompletedTask;
    }

    private async Task WriteFrameAsync(byte type, byte flags, uint streamId, byte[] payload)
    {
        var frame = new byte[9 + payload.Length];
        frame[0] = (byte)(payload.Length >> 16);
        frame[1] = (byte)(payload.Length >> 8);
        frame[2] = (byte)payload.Length;
        frame[3] = type;
        frame[4] = flags;
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(5), streamId);
        payload.CopyTo(frame, 9);
        await _stream.WriteAsync(frame);
    }

    private static void WriteString(MemoryStream block, string value)
    {
        var bytes = Encoding.ASCII.GetBytes(value);
        // HPACK integer with a 7-bit prefix (RFC 7541, section 5.1), Huffman bit off.
        if (bytes.Length < 127)
        {
            block.WriteByte((byte)bytes.Length);
        }
        else
        {
            block.WriteByte(127);
            var rest = bytes.Length - 127;
            while (rest >= 128)
            {
                block.WriteByte((byte)((rest % 128) + 128));
                rest /= 128;
            }

            block.WriteByte((byte)rest);
        }

        block.Write(bytes);
    }
}
