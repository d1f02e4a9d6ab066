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

    public static string? Directory { get; } = FindBrowserTests();

    /// <summary>Why browser tests cannot run here, or null.</summary>
    public static string? SkipReason { get; } =
        !File.Exists(ChromiumPath) ? $"Chromium is not installed ({ChromiumPath}; apt-get install chromium); .ci/run installs it."
        : Directory is null ? "tests/browser was not found next to the test assembly."
        : !System.IO.Directory.Exists(Path.Combine(Directory, "node_modules", "playwright-core")) ? "tests/browser/node_modules is missing (cd tests/browser && npm ci); .ci/run installs it."
        : FindNode() is null ? "node is not installed." : null;

    public static async Task<JsonElement> RunAsync(string relayUrl, params string[] args)
    {
        var info = new ProcessStartInfo(FindNode()!) { WorkingDirectory = Directory!, RedirectStandardOutput = true, RedirectStandardError = true };
        info.ArgumentList.Add("playground.mjs");
        info.ArgumentList.Add(relayUrl);
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"the browser driver did not finish: {await stderr}");
        }

        var output = (await stdout).Trim();
        if (process.ExitCode != 0 || output.Length == 0)
        {
            throw new InvalidOperationException($"the browser driver failed ({process.ExitCode}): {await stderr} {output}");
        }

        return JsonDocument.Parse(output.Split('\n')[^1]).RootElement;
    }

    private static string? FindNode()
        => new[] { "/usr/bin/node", "/usr/local/bin/node" }.FirstOrDefault(File.Exists);

    private static string? FindBrowserTests()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "browser");
            if (File.Exists(Path.Combine(candidate, "playground.mjs")))
            {
                return candidate;
            }
        }

        return null;
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
