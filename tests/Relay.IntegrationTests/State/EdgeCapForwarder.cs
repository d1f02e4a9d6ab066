using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Relay.IntegrationTests.State;

/// <summary>
/// An edge with a duration cap on each response, as a TCP forwarder on loopback (the product spec's Cloudflare caveat:
/// "the Workers runtime caps response duration"): bytes pass both ways unchanged; it follows HTTP/1.1's framing of
/// the responses (status line and headers, then chunked, <c>Content-Length</c> or until close) to know when one is in
/// flight, and when a response is still in flight <see cref="Cap"/> after its request began, it cuts the connection
/// (both sockets closed) and counts it in <see cref="Cuts"/>.
/// </summary>
internal sealed class EdgeCapForwarder : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly Uri _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _connections = [];
    private readonly Task _accepting;
    private int _cuts;
    private int _requests;
    private int _responses;

    private EdgeCapForwarder(string targetUrl, TimeSpan cap)
    {
        _target = new Uri(targetUrl);
        Cap = cap;
        _listener.Start();
        Url = $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";
        _accepting = AcceptAsync();
    }

    public string Url { get; }

    public TimeSpan Cap { get; }

    /// <summary>Connections cut with a response in flight.</summary>
    public int Cuts => Volatile.Read(ref _cuts);

    /// <summary>Requests that began.</summary>
    public int Requests => Volatile.Read(ref _requests);

    /// <summary>Responses that ended by their framing (or with a close the framing allows), before any cut.</summary>
    public int Responses => Volatile.Read(ref _responses);

    public static EdgeCapForwarder Start(string targetUrl, TimeSpan cap) => new(targetUrl, cap);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        Task[] connections;
        lock (_connections)
        {
            connections = [.. _connections];
        }

        await Task.WhenAll(connections);
        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            lock (_connections)
            {
                _connections.Add(ForwardAsync(client));
            }
        }
    }

    private async Task ForwardAsync(Socket client)
    {
        using var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        client.NoDelay = true;
        using var connection = new Connection(this, client, server);
        try
        {
            await server.ConnectAsync(_target.Host, _target.Port, _stop.Token);
            await Task.WhenAll(connection.PumpRequestsAsync(_stop.Token), connection.PumpResponsesAsync(_stop.Token));
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
        finally
        {
            connection.Close();
        }
    }

    /// <summary>One client connection and its connection to the target; at most one request in flight (no pipelining).</summary>
    private sealed class Connection(EdgeCapForwarder edge, Socket client, Socket server) : IDisposable
    {
        private readonly Lock _lock = new();
        private readonly ResponseFraming _framing = new();
        private Timer? _cap;
        private bool _inFlight;
        private bool _closed;

        public async Task PumpRequestsAsync(CancellationToken cancellationToken)
        {
            var buffer = new byte[16 * 1024];
            while (true)
            {
                var read = await Receive(client, buffer, cancellationToken);
                if (read == 0)
                {
                    Shutdown(server);
                    return;
                }

                lock (_lock)
                {
                    if (!_inFlight)
                    {
                        // A request begins: the edge's clock for its response starts now.
                        _inFlight = true;
                        Interlocked.Increment(ref edge._requests);
                        _cap = new Timer(static s => ((Connection)s!).OnCap(), this, edge.Cap, Timeout.InfiniteTimeSpan);
                    }
                }

                await server.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, cancellationToken);
            }
        }

        public async Task PumpResponsesAsync(CancellationToken cancellationToken)
        {
            var buffer = new byte[16 * 1024];
            while (true)
            {
                var read = await Receive(server, buffer, cancellationToken);
                if (read == 0)
                {
                    if (_framing.EndsAtClose)
                    {
                        Ended();
                    }

                    Shutdown(client);
                    return;
                }

                var ended = _framing.Feed(buffer.AsSpan(0, read));
                await client.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, cancellationToken);
                for (var i = 0; i < ended; i++)
                {
                    Ended();
                }
            }
        }

        public void Close()
        {
            lock (_lock)
            {
                _closed = true;
                _cap?.Dispose();
            }

            client.Close();
            server.Close();
        }

        public void Dispose() => Close();

        private void Ended()
        {
            lock (_lock)
            {
                if (!_inFlight)
                {
                    return;
                }

                _inFlight = false;
                _cap?.Dispose();
                _cap = null;
                Interlocked.Increment(ref edge._responses);
            }
        }

        private void OnCap()
        {
            lock (_lock)
            {
                if (!_inFlight || _closed)
                {
                    return;
                }

                _closed = true;
                Interlocked.Increment(ref edge._cuts);
            }

            // A cut, as an edge does it: the client sees its connection reset mid-response.
            client.LingerState = new LingerOption(true, 0);
            client.Close();
            server.Close();
        }

        private static async Task<int> Receive(Socket socket, byte[] buffer, CancellationToken cancellationToken)
        {
            try
            {
                return await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                return 0;
            }
        }

        private static void Shutdown(Socket socket)
        {
            try
            {
                socket.Shutdown(SocketShutdown.Send);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
            }
        }
    }

    /// <summary>RFC 9112's message framing of HTTP/1.1 responses, followed byte by byte: where each response ends.</summary>
    private sealed class ResponseFraming
    {
        private readonly StringBuilder _line = new();
        private State _state = State.StatusLine;
        private long _remaining;
        private bool _chunked;
        private long? _length;
        private int _status;

        private enum State
        {
            StatusLine,
            Headers,
            Body,
            UntilClose,
            ChunkSize,
            ChunkData,
            ChunkDataEnd,
            Trailers,
        }

        /// <summary>Whether the response in progress ends when the connection closes (no length, not chunked).</summary>
        public bool EndsAtClose => _state == State.UntilClose;

        /// <summary>Reads response bytes; returns how many responses ended in them.</summary>
        public int Feed(ReadOnlySpan<byte> bytes)
        {
            var ended = 0;
            var i = 0;
            while (i < bytes.Length)
            {
                switch (_state)
                {
                    case State.Body:
                    case State.ChunkData:
                        var take = (int)Math.Min(_remaining, bytes.Length - i);
                        i += take;
                        _remaining -= take;
                        if (_remaining == 0)
                        {
                            if (_state == State.ChunkData)
                            {
                                _state = State.ChunkDataEnd;
                            }
                            else
                            {
                                ended++;
                                _state = State.StatusLine;
                            }
                        }

                        break;
                    case State.UntilClose:
                        return ended;
                    default:
                        var b = bytes[i++];
                        if (b != (byte)'\n')
                        {
                            if (b != (byte)'\r')
                            {
                                _line.Append((char)b);
                            }

                            break;
                        }

                        ended += OnLine(_line.ToString()) ? 1 : 0;
                        _line.Clear();
                        break;
                }
            }

            return ended;
        }

        /// <summary>One line of the head, a chunk size or a trailer; true when it ended a response.</summary>
        private bool OnLine(string line)
        {
            switch (_state)
            {
                case State.StatusLine:
                    _status = int.Parse(line.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
                    _chunked = false;
                    _length = null;
                    _state = State.Headers;
                    return false;
                case State.Headers when line.Length > 0:
                    var colon = line.IndexOf(':');
                    var name = line[..colon].Trim();
                    var value = line[(colon + 1)..].Trim();
                    if (name.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase) && value.Contains("chunked", StringComparison.OrdinalIgnoreCase))
                    {
                        _chunked = true;
                    }
                    else if (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                    {
                        _length = long.Parse(value, System.Globalization.CultureInfo.InvariantCulture);
                    }

                    return false;
                case State.Headers:
                    if (_status is >= 100 and < 200)
                    {
                        _state = State.StatusLine; // An interim response: the final one follows.
                        return false;
                    }

                    if (_status is 204 or 304 || (!_chunked && _length == 0))
                    {
                        _state = State.StatusLine;
                        return true;
                    }

                    _state = _chunked ? State.ChunkSize : _length is { } length ? State.Body : State.UntilClose;
                    _remaining = _length ?? 0;
                    return false;
                case State.ChunkSize:
                    var size = Convert.ToInt64(line.Split(';')[0].Trim(), 16);
                    _state = size == 0 ? State.Trailers : State.ChunkData;
                    _remaining = size;
                    return false;
                case State.ChunkDataEnd:
                    _state = State.ChunkSize;
                    return false;
                case State.Trailers when line.Length == 0:
                    _state = State.StatusLine;
                    return true;
                default:
                    return false; // A trailer field.
            }
        }
    }
}
