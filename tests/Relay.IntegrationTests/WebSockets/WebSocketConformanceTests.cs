using System.Security.Cryptography;
using System.Text.Json;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests.WebSockets;

/// <summary>
/// RFC 6455 conformance of the bridge's endpoint, with raw frames over a TCP socket: the receiver cases of
/// websockets/ws (MIT) and the UTF-8 payloads of Autobahn case 6 (Apache-2.0), from ../shared/testdata/websocket.
/// </summary>
public sealed class WebSocketConformanceTests(MockUpstreamFixture upstream) : RelayTestBase(upstream)
{
    public static TheoryData<string> FrameVectors()
    {
        var data = new TheoryData<string>();
        if (TestData.Root is null)
        {
            data.Add("(no test data)");
            return data;
        }

        foreach (var v in Load("websocket/ws_frame_vectors.json").GetProperty("vectors").EnumerateArray())
        {
            data.Add(v.GetProperty("name").GetString()!);
        }

        return data;
    }

    [TestDataTheory]
    [MemberData(nameof(FrameVectors))]
    public async Task FrameVector_GetsTheCloseCodeItRequires(string name)
    {
        var vector = Load("websocket/ws_frame_vectors.json").GetProperty("vectors").EnumerateArray().Single(v => v.GetProperty("name").GetString() == name);
        var role = vector.GetProperty("receiver_role").GetString()!;
        var chunks = vector.GetProperty("chunks_hex").EnumerateArray().Select(c => Convert.FromHexString(c.GetString()!)).ToList();
        var expect = vector.GetProperty("expect");

        // The vectors are written for the receiver named in receiver_role. A client-role frame reaches the server
        // as a client would send it (masked); "client receives masked frame" mirrors to a server receiving an
        // unmasked one. Relay negotiates no permessage-deflate, so an RSV1 frame is a protocol error (1002) even
        // where the vector's receiver had deflate on.
        var mirrored = name == "client receives masked frame";
        var bound = role.StartsWith("server", StringComparison.Ordinal) ? chunks : FrameConverter.ToServer(chunks, mask: !mirrored);
        int? closeCode = expect.ValueKind == JsonValueKind.String ? vector.GetProperty("close_code").GetInt32()
            : role.Contains("deflate", StringComparison.Ordinal) ? 1002 : null;

        var (socket, head) = await RawWebSocket.ConnectAsync(Relay.Url);
        await using var owned = socket;
        Assert.StartsWith("HTTP/1.1 101", head);
        Assert.Equal("session.created", JsonDocument.Parse((await socket.ReadFrameAsync())!.Text).RootElement.GetProperty("type").GetString());
        foreach (var chunk in bound)
        {
            await socket.WriteAsync(chunk);
        }

        if (closeCode is { } code)
        {
            var others = new List<RawFrame>();
            var close = await socket.ReadUntilCloseAsync(others);
            Assert.True(close is not null, $"{name}: the connection ended without a close frame");
            Assert.Equal(code, close.CloseCode);
            Assert.DoesNotContain(others, f => f.Opcode == 1 && f.Text.Contains("response.created", StringComparison.Ordinal));
            return;
        }

        if (expect.TryGetProperty("message_text", out _))
        {
            // Accepted: not JSON, so the bridge answers with an error message and keeps the socket open.
            var reply = await socket.ReadFrameAsync();
            Assert.Equal("invalid_json", JsonDocument.Parse(reply!.Text).RootElement.GetProperty("error").GetProperty("code").GetString());
        }
        else if (expect.TryGetProperty("ping_payload_hex", out var ping))
        {
            var pong = await socket.ReadFrameAsync();
            Assert.Equal(10, pong!.Opcode);
            Assert.Equal(ping.GetString(), Convert.ToHexString(pong.Payload).ToLowerInvariant());
        }
        else if (expect.TryGetProperty("close_code_received", out _))
        {
            // The server answers the client's close with its own (RFC 6455 section 5.5.1): the status echoed, 1000 for none.
            var close = await socket.ReadUntilCloseAsync();
            Assert.Equal(1000, close!.CloseCode);
            return;
        }

        await socket.WriteAsync(RawWebSocket.ClientFrame(8, [0x03, 0xE8]));
        Assert.Equal(1000, (await socket.ReadUntilCloseAsync())!.CloseCode);
    }

    [TestDataFact]
    public async Task Autobahn6Utf8Payloads_ValidAccepted_InvalidClosedWith1007()
    {
        var failures = new List<string>();
        var count = 0;
        foreach (var group in Load("websocket/autobahn_case6_utf8_payloads.json").GetProperty("groups").EnumerateArray())
        {
            foreach (var payload in group.GetProperty("payloads").EnumerateArray())
            {
                count++;
                var hex = payload.GetProperty("hex").GetString()!;
                var valid = payload.GetProperty("valid").GetBoolean();
                var (socket, _) = await RawWebSocket.ConnectAsync(Relay.Url);
                await using var __ = socket;
                await socket.ReadFrameAsync();
                await socket.WriteAsync(RawWebSocket.ClientFrame(1, Convert.FromHexString(hex)));
                var reply = await socket.ReadFrameAsync();
                var outcome = reply is null ? "no reply" : reply.Opcode == 8 ? $"close {reply.CloseCode}" : reply.Opcode == 1 ? "message" : $"opcode {reply.Opcode}";
                if (valid ? outcome != "message" : outcome != "close 1007")
                {
                    failures.Add($"{group.GetProperty("title").GetString()}: {hex} ({(valid ? "valid" : "invalid")}) -> {outcome}");
                }
            }
        }

        Assert.True(count > 100, $"{count} payloads");
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Fact]
    public async Task FragmentedMessageOverTheLimit_ClosesWith1009_BeforeItsLastFrame()
    {
        await using var relay = await InProcessRelay.StartAsync(Upstream.Url, new Dictionary<string, string?> { ["Relay:WebSocket:MaxMessageBytes"] = "2048" });
        var (socket, _) = await RawWebSocket.ConnectAsync(relay.Url);
        await using var __ = socket;
        await socket.ReadFrameAsync();
        var part = new byte[1500];
        part.AsSpan().Fill((byte)'a');
        await socket.WriteAsync(RawWebSocket.ClientFrame(1, part, fin: false));
        await socket.WriteAsync(RawWebSocket.ClientFrame(0, part, fin: false));
        Assert.Equal(1009, (await socket.ReadUntilCloseAsync())!.CloseCode);
    }

    private static JsonElement Load(string relative) => JsonDocument.Parse(File.ReadAllText(TestData.Path(relative))).RootElement;
}

/// <summary>Turns frames written for a client receiver into what a client sends a server (masked), chunk by chunk.</summary>
internal static class FrameConverter
{
    /// <summary>
    /// Masks (or, with <paramref name="mask"/> false, unmasks) every frame, keeping the vector's write boundaries. A frame
    /// the vector leaves incomplete (it tests a header rule) is completed with neutral bytes: the extended length the
    /// header promises (126 for a 16-bit one, 2^16 for a 64-bit one), the mask key, and zero payload bytes up to 125, so
    /// that a receiver which validates whole headers (as .NET's does) meets the same rule instead of waiting.
    /// </summary>
    public static List<byte[]> ToServer(IReadOnlyList<byte[]> chunks, bool mask)
    {
        var output = new List<byte[]>();
        var header = new List<byte>();
        var key = RandomNumberGenerator.GetBytes(4);
        byte[]? inputKey = null;
        long remaining = 0;
        var index = 0;
        foreach (var chunk in chunks)
        {
            var bytes = new List<byte>();
            foreach (var b in chunk)
            {
                if (remaining > 0)
                {
                    var plain = inputKey is null ? b : (byte)(b ^ inputKey[index % 4]);
                    bytes.Add(mask ? (byte)(plain ^ key[index % 4]) : plain);
                    index++;
                    remaining--;
                    continue;
                }

                header.Add(b);
                if (header.Count >= 2 && header.Count == HeaderSize(header))
                {
                    remaining = EmitHeader(header, bytes, mask, key, out inputKey);
                    index = 0;
                }
            }

            output.Add([.. bytes]);
        }

        var tail = new List<byte>();
        if (header.Count > 0)
        {
            if (header.Count == 1)
            {
                header.Add(0);
            }

            var len7 = header[1] & 0x7F;
            var ext = len7 == 126 ? new byte[] { 0, 126 } : len7 == 127 ? new byte[] { 0, 0, 0, 0, 0, 1, 0, 0 } : [];
            header.AddRange(ext.Skip(header.Count - 2));
            if ((header[1] & 0x80) != 0)
            {
                header.AddRange(new byte[HeaderSize(header) - header.Count]);
            }

            remaining = EmitHeader(header, tail, mask, key, out inputKey);
            index = 0;
        }

        for (; remaining > 0 && remaining <= 125; remaining--, index++)
        {
            tail.Add(mask ? key[index % 4] : (byte)0);
        }

        if (tail.Count > 0)
        {
            output[^1] = [.. output[^1], .. tail];
        }

        return output;
    }

    private static long EmitHeader(List<byte> header, List<byte> output, bool mask, byte[] key, out byte[]? inputKey)
    {
        var len7 = header[1] & 0x7F;
        var extEnd = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
        inputKey = (header[1] & 0x80) != 0 ? header.GetRange(extEnd, 4).ToArray() : null;
        output.Add(header[0]);
        output.Add((byte)(mask ? header[1] | 0x80 : header[1] & 0x7F));
        output.AddRange(header.GetRange(2, extEnd - 2));
        if (mask)
        {
            output.AddRange(key);
        }

        long length = len7 < 126 ? len7 : 0;
        for (var i = 2; i < extEnd; i++)
        {
            length = (length << 8) | header[i];
        }

        header.Clear();
        return length;
    }

    private static int HeaderSize(List<byte> header)
    {
        var len7 = header[1] & 0x7F;
        return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((header[1] & 0x80) != 0 ? 4 : 0);
    }
}
