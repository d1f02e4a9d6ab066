using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;

namespace Relay.IntegrationTests.Infrastructure;

/// <summary>
/// An HTTP/1.1 upstream on a raw loopback socket that records every request byte for byte (what a real server would
/// have received) and answers with whatever the test says, or not at all. One request per connection.
/// </summary>
public sealed class RawHttpUpstream : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly Func<RawHttpRequest, byte[]?> _respond;
    private readonly Channel<RawHttpRequest> _requests = Channel.CreateUnbounded<RawHttpRequest>();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;

    private RawHttpUpstream(Func<RawHttpRequest, byte[]?> respond)
    {
        _respond = respond;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Url = $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";
        _accepting = AcceptAsync();
    }

    public string Url { get; }

    /// <summary>Starts the upstream. <paramref name="respond"/> returns the response bytes, or null to never answer.</summary>
    public static RawHttpUpstream Start(Func<RawHttpRequest, byte[]?> respond) => new(respond);

    /// <summary>A complete response with a body and a Content-Length.</summary>
    public static byte[] Response(int status, string contentType, string body, string extraHeaders = "")
    {
        var bytes = Encoding.UTF8.GetBytes(body);
        return [.. Encoding.ASCII.GetBytes($"HTTP/1.1 {status} X\r\nContent-Type: {contentType}\r\nContent-Length: {bytes.Length}\r\n{extraHeaders}Connection: close\r\n\r\n"), .. bytes];
    }

    /// <summary>The next request received (its body read to its end, or as far as the client sent it before going away).</summary>
    public async Task<RawHttpRequest> NextRequestAsync()
    {
        using var timeout = new CancellationTokenSource(Deadline.Default);
        return await _requests.Reader.ReadAsync(timeout.Token);
    }

    /// <summary>Whether any request arrived so far.</summary>
    public bool ReceivedAny => _requests.Reader.Count > 0;

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try
        {
            await _accepting;
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }

        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            var socket = await _listener.AcceptTcpClientAsync(_stop.Token);
            _ = ServeAsync(socket);
        }
    }

    private async Task ServeAsync(TcpClient socket)
    {
        using (socket)
        {
            var stream = socket.GetStream();
            var received = new List<byte>();
            var buffer = new byte[65536];
            var headEnd = -1;
            try
            {
                while (headEnd < 0)
                {
                    var n = await stream.ReadAsync(buffer, _stop.Token);
                    if (n == 0)
                    {
                        return;
                    }

                    received.AddRange(buffer.AsSpan(0, n));
                    headEnd = IndexOf(received, "\r\n\r\n"u8) is var i and >= 0 ? i + 4 : -1;
                }

                var head = received.GetRange(0, headEnd).ToArray();
                var body = received.GetRange(headEnd, received.Count - headEnd);
                var length = new RawHttpRequest(head, []).Header("Content-Length") is { } value ? int.Parse(value, System.Globalization.CultureInfo.InvariantCulture) : 0;
                var chunked = new RawHttpRequest(head, []).Header("Transfer-Encoding") is { } te && te.Contains("chunked", StringComparison.OrdinalIgnoreCase);
                while (chunked ? IndexOf(body, "0\r\n\r\n"u8) < 0 : body.Count < length)
                {
                    var n = await stream.ReadAsync(buffer, _stop.Token);
                    if (n == 0)
                    {
                        break;
                    }

                    body.AddRange(buffer.AsSpan(0, n));
                }

                var request = new RawHttpRequest(head, [.. body]);
                _requests.Writer.TryWrite(request);
                if (_respond(request) is { } response)
                {
                    await stream.WriteAsync(response, _stop.Token);
                    await stream.FlushAsync(_stop.Token);
                }
                else
                {
                    // Never answer: hold the connection until the client goes away.
                    while (await stream.ReadAsync(buffer, _stop.Token) > 0)
                    {
                    }
                }
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException or SocketException)
            {
            }
        }
    }

    private static int IndexOf(List<byte> haystack, ReadOnlySpan<byte> needle)
        => System.Runtime.InteropServices.CollectionsMarshal.AsSpan(haystack).IndexOf(needle);
}
