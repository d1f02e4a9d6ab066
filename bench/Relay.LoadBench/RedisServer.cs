using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Relay.LoadBench;

/// <summary>
/// A redis-server process (Debian's <c>redis-server</c>) for the target with resumable streams: a free loopback
/// port, no persistence (<c>--save "" --appendonly no</c>), pinned to a core like every other server the benchmark
/// starts. <see cref="UsedMemoryAsync"/> asks it for <c>INFO memory</c> over a plain socket (RESP inline command).
/// </summary>
internal sealed class RedisServer : IAsyncDisposable
{
    public static readonly string? Binary = new[] { "/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server" }.FirstOrDefault(File.Exists);

    private RedisServer(TargetProcess process, int port)
    {
        Process = process;
        Port = port;
    }

    public TargetProcess Process { get; }

    public int Port { get; }

    /// <summary>The StackExchange.Redis connection string.</summary>
    public string ConnectionString => $"127.0.0.1:{Port}";

    public static async Task<RedisServer> StartAsync(int core, string dir)
    {
        var port = TargetProcess.FreePort();
        var process = TargetProcess.Start("redis-server", core, dir, Binary ?? throw new InvalidOperationException("redis-server is not installed"),
        [
            "--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir,
        ]);
        try
        {
            await process.WaitListeningAsync([port], TimeSpan.FromSeconds(10));
        }
        catch
        {
            await process.DisposeAsync();
            throw;
        }

        return new RedisServer(process, port);
    }

    /// <summary><c>used_memory</c> of <c>INFO memory</c>: the bytes Redis allocated for its data (NaN when it cannot be read).</summary>
    public async Task<double> UsedMemoryAsync()
    {
        try
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(IPAddress.Loopback, Port);
            await socket.SendAsync("INFO memory\r\n"u8.ToArray());
            // The reply is one bulk string, "$<length>\r\n<text>\r\n": read until the text is complete.
            var received = new List<byte>();
            var buffer = new byte[4096];
            while (true)
            {
                var read = await socket.ReceiveAsync(buffer);
                if (read == 0)
                {
                    return double.NaN;
                }

                received.AddRange(buffer.AsSpan(0, read));
                var text = Encoding.ASCII.GetString([.. received]);
                var header = text.IndexOf("\r\n", StringComparison.Ordinal);
                if (header > 0 && text[0] == '$' && text.Length >= header + 2 + int.Parse(text.AsSpan(1, header - 1), CultureInfo.InvariantCulture))
                {
                    var line = text.Split("\r\n").FirstOrDefault(l => l.StartsWith("used_memory:", StringComparison.Ordinal));
                    return line is null ? double.NaN : long.Parse(line["used_memory:".Length..], CultureInfo.InvariantCulture);
                }
            }
        }
        catch (SocketException)
        {
            return double.NaN;
        }
    }

    public ValueTask DisposeAsync() => Process.DisposeAsync();
}
