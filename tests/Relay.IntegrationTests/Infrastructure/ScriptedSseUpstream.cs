using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Relay.IntegrationTests.Infrastructure;

/// <summary>
/// An upstream on a raw loopback socket that answers every request with <c>200 text/event-stream</c> and a body
/// chosen by the request path, byte for byte, then closes the connection: a clean end exactly where the body ends
/// (no framing of its own that a server framework would add or fix up).
/// </summary>
public sealed class ScriptedSseUpstream : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly Func<string, byte[]> _body;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accept;

    public ScriptedSseUpstream(Func<string, byte[]> body)
    {
        _body = body;
        _listener.Start();
        Url = $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";
        _accept = AcceptAsync();
    }

    public ScriptedSseUpstream(string body)
        : this(_ => Encoding.UTF8.GetBytes(body))
    {
    }

    public string Url { get; }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient socket;
            try
            {
                socket = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            _ = ServeAsync(socket);
        }
    }

    private async Task ServeAsync(TcpClient socket)
    {
        using (socket)
        {
            try
            {
                var stream = socket.GetStream();
                var head = new List<byte>();
                var buffer = new byte[8192];
                while (!Encoding.ASCII.GetString([.. head]).Contains("\r\n\r\n", StringComparison.Ordinal))
                {
                    var read = await stream.ReadAsync(buffer, _stop.Token);
                    if (read == 0)
                    {
                        return;
                    }

                    head.AddRange(buffer.AsSpan(0, read).ToArray());
                }

                // Read the request body too: closing with unread bytes would reset the connection under the answer.
                var text = Encoding.ASCII.GetString([.. head]);
                var headEnd = text.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4;
                var length = text[..headEnd].Split("\r\n")
                    .Where(static l => l.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase))
                    .Select(static l => int.Parse(l[15..].Trim(), System.Globalization.CultureInfo.InvariantCulture)).FirstOrDefault();
                for (var have = head.Count - headEnd; have < length;)
                {
                    var read = await stream.ReadAsync(buffer, _stop.Token);
                    if (read == 0)
                    {
                        return;
                    }

                    have += read;
                }

                var path = text.Split(' ', 3)[1];
                var headers = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"u8.ToArray();
                await stream.WriteAsync(headers, _stop.Token);
                await stream.WriteAsync(_body(path), _stop.Token);
                await stream.FlushAsync(_stop.Token);
                socket.Client.Shutdown(SocketShutdown.Send);
            }
            catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException)
            {
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accept;
        _stop.Dispose();
    }
}
