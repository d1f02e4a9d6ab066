using System.Diagnostics;
using System.Text.Json;

namespace Relay.IntegrationTests.Infrastructure;

/// <summary>
/// Runs the Node driver in <c>tests/browser</c> (playwright-core driving Debian's headless Chromium) and returns the
/// JSON it prints. The browser is real; Node only steers it.
/// </summary>
public static class BrowserDriver
{
    public const string ChromiumPath = "/usr/bin/chromium";

    public static string? Directory { get; } = NodeScript.FindFolder("browser", "playground.mjs");

    /// <summary>Why browser tests cannot run here, or null.</summary>
    public static string? SkipReason { get; } =
        !File.Exists(ChromiumPath) ? $"Chromium is not installed ({ChromiumPath}; apt-get install chromium); .ci/run installs it."
        : Directory is null ? "tests/browser was not found next to the test assembly."
        : !System.IO.Directory.Exists(Path.Combine(Directory, "node_modules", "playwright-core")) ? "tests/browser/node_modules is missing (cd tests/browser && npm ci); .ci/run installs it."
        : NodeScript.Node is null ? "node is not installed." : null;

    /// <summary>Runs <c>playground.mjs</c>, in the Chromium of <paramref name="browser"/> where given, else in its own.</summary>
    public static async Task<JsonElement> RunAsync(BrowserServer? browser, string relayUrl, params string[] args)
    {
        var environment = browser?.Endpoint is { } endpoint ? new Dictionary<string, string> { ["BROWSER_WS_ENDPOINT"] = endpoint } : null;
        var (exitCode, stdout, stderr) = await NodeScript.RunAsync(Directory!, "playground.mjs", [relayUrl, .. args], TimeSpan.FromSeconds(180), environment);
        var output = stdout.Trim();
        if (exitCode != 0 || output.Length == 0)
        {
            throw new InvalidOperationException($"the browser driver failed ({exitCode}): {stderr} {output}");
        }

        return JsonDocument.Parse(output.Split('\n')[^1]).RootElement;
    }
}

/// <summary>
/// One headless Chromium for a test class (<c>tests/browser/browser-server.mjs</c>, a playwright browser server): each
/// script connects to it and opens its own context instead of launching a browser (seconds per test on a busy
/// machine). Nothing is started where <see cref="BrowserDriver.SkipReason"/> says browser tests cannot run.
/// </summary>
public sealed class BrowserServer : IAsyncLifetime
{
    private Process? _process;

    /// <summary>The endpoint scripts connect to, or null where browser tests are skipped.</summary>
    public string? Endpoint { get; private set; }

    public Task<JsonElement> RunAsync(string relayUrl, params string[] args) => BrowserDriver.RunAsync(this, relayUrl, args);

    public async Task InitializeAsync()
    {
        if (BrowserDriver.SkipReason is not null)
        {
            return;
        }

        var info = new ProcessStartInfo(NodeScript.Node!)
        {
            WorkingDirectory = BrowserDriver.Directory!, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true,
        };
        info.ArgumentList.Add("browser-server.mjs");
        _process = Process.Start(info)!;
        var stderr = _process.StandardError.ReadToEndAsync();
        var line = await _process.StandardOutput.ReadLineAsync().WaitAsync(Deadline.Default);
        if (line is null || !line.StartsWith("ws://", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"the browser server did not start: {line} {await stderr.WaitAsync(Deadline.Default)}");
        }

        Endpoint = line;
    }

    public async Task DisposeAsync()
    {
        if (_process is null)
        {
            return;
        }

        // The end of its input closes the browser (also when the test process dies).
        _process.StandardInput.Close();
        try
        {
            await _process.WaitForExitAsync().WaitAsync(Deadline.Default);
        }
        catch (TimeoutException)
        {
            _process.Kill(entireProcessTree: true);
        }

        _process.Dispose();
    }
}

/// <summary>A fact that is skipped, with the reason, where Chromium or the Node driver is missing.</summary>
public sealed class BrowserFactAttribute : FactAttribute
{
    public BrowserFactAttribute()
    {
        Skip = BrowserDriver.SkipReason;
    }
}
