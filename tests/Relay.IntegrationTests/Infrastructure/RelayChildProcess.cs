using System.Collections.Concurrent;
using System.Diagnostics;

namespace Relay.IntegrationTests.Infrastructure;

/// <summary>
/// Relay from its build output as a separate process, for settings that are process-wide: the environment's proxy
/// variables (read once, by <see cref="HttpClient.DefaultProxy"/>) and OpenSSL's <c>SSL_CERT_FILE</c>. Its console
/// output is kept for assertions. The proxy variables of the test run's own environment are not inherited.
/// </summary>
public sealed class RelayChildProcess : IAsyncDisposable
{
    private static readonly string[] ProxyVariables =
        ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"];

    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();

    private RelayChildProcess(Process process, int port)
    {
        _process = process;
        Url = $"http://127.0.0.1:{port}";
    }

    public string Url { get; }

    /// <summary>Everything Relay wrote to stdout and stderr so far.</summary>
    public string Output => string.Join('\n', _output);

    /// <summary>Starts Relay in front of <paramref name="upstreamUrl"/> with <paramref name="environment"/> and extra <paramref name="args"/>; Relay's egress logs at Information.</summary>
    public static async Task<RelayChildProcess> StartAsync(string upstreamUrl, IDictionary<string, string> environment, params string[] args)
    {
        var port = FreePort.Next();
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        info.ArgumentList.Add(DotnetProcess.BuiltDll("Relay"));
        foreach (var a in (string[])["--urls", $"http://127.0.0.1:{port}", "--Relay:Upstream:BaseUrl", upstreamUrl, .. args])
        {
            info.ArgumentList.Add(a);
        }

        foreach (var name in ProxyVariables)
        {
            info.Environment.Remove(name);
        }

        info.Environment["Logging__LogLevel__Default"] = "Warning";
        info.Environment["Logging__LogLevel__Relay.Middleware.Egress"] = "Information";
        foreach (var (name, value) in environment)
        {
            info.Environment[name] = value;
        }

        var process = Process.Start(info)!;
        var relay = new RelayChildProcess(process, port);
        process.OutputDataReceived += (_, e) => relay.Append(e.Data);
        process.ErrorDataReceived += (_, e) => relay.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        await DotnetProcess.WaitListeningAsync(process, port, () => Task.FromResult(relay.Output));
        return relay;
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            _output.Enqueue(line);
        }
    }

    public async ValueTask DisposeAsync() => await DotnetProcess.StopAsync(_process);
}
