using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Relay.LoadBench;

/// <summary>
/// A server started as its own process, pinned to a core with <c>taskset</c>, its output in a log file. Started
/// through <c>sh -c 'exec taskset ... exec'</c> so that the process id is the server's own.
/// </summary>
internal sealed class TargetProcess : IAsyncDisposable
{
    private readonly Process _process;

    private TargetProcess(Process process, string logPath)
    {
        _process = process;
        LogPath = logPath;
    }

    public int Pid => _process.Id;

    public string LogPath { get; }

    public bool HasExited => _process.HasExited;

    public static TargetProcess Start(string name, int core, string workDir, string executable, IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        var logPath = Path.Combine(workDir, name + ".log");
        var info = new ProcessStartInfo("/bin/sh")
        {
            WorkingDirectory = workDir,
            UseShellExecute = false,
        };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add("exec taskset -c \"$0\" \"$@\" > \"$LOADBENCH_LOG\" 2>&1");
        info.ArgumentList.Add(core.ToString(System.Globalization.CultureInfo.InvariantCulture));
        info.ArgumentList.Add(executable);
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        info.Environment["LOADBENCH_LOG"] = logPath;
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        info.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[key] = value;
        }

        return new TargetProcess(Process.Start(info) ?? throw new InvalidOperationException($"could not start {executable}"), logPath);
    }

    /// <summary>Waits until every port accepts a TCP connection, or fails with the process's log.</summary>
    public async Task WaitListeningAsync(IEnumerable<int> ports, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        foreach (var port in ports)
        {
            while (true)
            {
                if (_process.HasExited)
                {
                    throw new InvalidOperationException($"exited with {_process.ExitCode} before listening: {Tail()}");
                }

                try
                {
                    using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                    await socket.ConnectAsync(IPAddress.Loopback, port);
                    break;
                }
                catch (SocketException) when (DateTime.UtcNow < deadline)
                {
                    await Task.Delay(50);
                }
            }
        }
    }

    public string Tail()
    {
        try
        {
            var text = File.ReadAllText(LogPath);
            return text.Length > 2000 ? text[^2000..] : text;
        }
        catch (IOException)
        {
            return "";
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }

    /// <summary>A free loopback port (bound, then released).</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
