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

    public static async Task<JsonElement> RunAsync(string relayUrl, params string[] args)
    {
        var (exitCode, stdout, stderr) = await NodeScript.RunAsync(Directory!, "playground.mjs", [relayUrl, .. args], TimeSpan.FromSeconds(180));
        var output = stdout.Trim();
        if (exitCode != 0 || output.Length == 0)
        {
            throw new InvalidOperationException($"the browser driver failed ({exitCode}): {stderr} {output}");
        }

        return JsonDocument.Parse(output.Split('\n')[^1]).RootElement;
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
