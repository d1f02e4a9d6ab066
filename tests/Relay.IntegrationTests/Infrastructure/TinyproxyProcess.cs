using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Relay.IntegrationTests.Infrastructure;

/// <summary>
/// A real forward proxy (tinyproxy, Debian package) on a free loopback port, in the foreground, with its log in a
/// temporary folder: the corporate egress proxy of the tests. CONNECT is allowed to any port (no <c>ConnectPort</c>).
/// </summary>
public sealed partial class TinyproxyProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _dir;

    private TinyproxyProcess(Process process, string dir, int port)
    {
        _process = process;
        _dir = dir;
        Port = port;
    }

    public int Port { get; }

    public static string? Binary { get; } = new[] { "/usr/bin/tinyproxy", "/usr/sbin/tinyproxy", "/usr/local/bin/tinyproxy" }.FirstOrDefault(File.Exists);

    public const string MissingReason = "tinyproxy is not installed (apt-get install tinyproxy); .ci/run installs it.";

    /// <summary>Starts the proxy; with <paramref name="basicAuth"/>, it demands those credentials (407 without them).</summary>
    public static async Task<TinyproxyProcess> StartAsync((string User, string Password)? basicAuth = null)
    {
        if (Binary is null)
        {
            throw new InvalidOperationException(MissingReason);
        }

        var dir = Directory.CreateTempSubdirectory("relay-tinyproxy-").FullName;
        var port = FreePort.Next();
        var config = $"""
            Port {port}
            Listen 127.0.0.1
            Timeout 60
            LogFile "{dir}/tinyproxy.log"
            LogLevel Info
            PidFile "{dir}/tinyproxy.pid"
            MaxClients 100
            Allow 127.0.0.1
            DisableViaHeader Yes
            {(basicAuth is { } auth ? $"BasicAuth {auth.User} {auth.Password}" : "")}
            """;
        var path = Path.Combine(dir, "tinyproxy.conf");
        await File.WriteAllTextAsync(path, config);
        var process = Process.Start(new ProcessStartInfo(Binary, ["-d", "-c", path]) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        process.OutputDataReceived += static (_, _) => { };
        process.ErrorDataReceived += static (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var proxy = new TinyproxyProcess(process, dir, port);
        await DotnetProcess.WaitListeningAsync(process, port, () => Task.FromResult(proxy.Log()), TimeSpan.FromSeconds(10));
        return proxy;
    }

    public string Url => $"http://127.0.0.1:{Port}";

    /// <summary>The proxy's log so far.</summary>
    public string Log()
    {
        var path = Path.Combine(_dir, "tinyproxy.log");
        if (!File.Exists(path))
        {
            return "";
        }

        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return new StreamReader(stream).ReadToEnd();
    }

    /// <summary>The CONNECT requests the proxy has logged (e.g. <c>CONNECT 127.0.0.1:5001 HTTP/1.1</c>).</summary>
    public IReadOnlyList<string> ConnectRequests()
        => [.. ConnectLine().Matches(Log()).Select(static m => m.Groups[1].Value)];

    [GeneratedRegex(@"Request \(file descriptor \d+\): (CONNECT [^\r\n]+)")]
    private static partial Regex ConnectLine();

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>A fact that is skipped, with a clear reason, when tinyproxy is not installed.</summary>
public sealed class TinyproxyFactAttribute : FactAttribute
{
    public TinyproxyFactAttribute()
    {
        if (TinyproxyProcess.Binary is null)
        {
            Skip = TinyproxyProcess.MissingReason;
        }
    }
}
