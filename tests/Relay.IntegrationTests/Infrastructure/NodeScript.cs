using System.Diagnostics;

namespace Relay.IntegrationTests.Infrastructure;

/// <summary>Runs a Node script of one of the repository's npm test folders (tests/browser, tests/ws-client).</summary>
public static class NodeScript
{
    /// <summary>The Node binary, or null where Node is not installed.</summary>
    public static string? Node { get; } = new[] { "/usr/bin/node", "/usr/local/bin/node" }.FirstOrDefault(File.Exists);

    /// <summary>The folder <c>tests/<paramref name="name"/></c> that holds <paramref name="script"/>, found upwards from the test assembly.</summary>
    public static string? FindFolder(string name, string script)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", name);
            if (File.Exists(Path.Combine(candidate, script)))
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>Runs <c>node script args</c> in <paramref name="folder"/>; kills it after <paramref name="timeout"/>.</summary>
    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(
        string folder, string script, IEnumerable<string> args, TimeSpan timeout, IDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo(Node ?? "node") { WorkingDirectory = folder, RedirectStandardOutput = true, RedirectStandardError = true };
        info.ArgumentList.Add(script);
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[key] = value;
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"node {script} did not finish in {timeout}: {await stderr}");
        }

        return (process.ExitCode, await stdout, await stderr);
    }
}
