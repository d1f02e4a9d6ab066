using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;

namespace Relay.IntegrationTests.Infrastructure;

/// <summary>Runs one of the repository's projects from its build output as a separate process.</summary>
public static class DotnetProcess
{
    /// <summary>Starts <c>dotnet <paramref name="dll"/> args</c> with warnings-only logging; output is drained.</summary>
    public static Process Start(string dll, params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        info.ArgumentList.Add(dll);
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["Logging__LogLevel__Default"] = "Warning";
        var process = Process.Start(info)!;
        process.OutputDataReceived += static (_, _) => { };
        process.ErrorDataReceived += static (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>The project's own build output (same configuration as the tests).</summary>
    public static string BuiltDll(string project)
    {
        var testDir = new DirectoryInfo(AppContext.BaseDirectory); // tests/X/bin/<Configuration>/net10.0/
        var configuration = testDir.Parent!.Name;
        var framework = testDir.Name;
        var repo = testDir.Parent!.Parent!.Parent!.Parent!.Parent!.FullName;
        var path = Path.Combine(repo, "src", project, "bin", configuration, framework, project + ".dll");
        return File.Exists(path) ? path : throw new FileNotFoundException($"Build {project} first: {path} is missing.");
    }

    /// <summary>
    /// Polls until something accepts connections on <paramref name="port"/> (a readiness check, not a sleep that
    /// synchronises behaviour); fails with <paramref name="diagnostics"/> if the process exits or the time runs out.
    /// </summary>
    public static async Task WaitListeningAsync(Process process, int port, Func<Task<string>>? diagnostics = null, TimeSpan? timeout = null)
    {
        diagnostics ??= static () => Task.FromResult("");
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < (timeout ?? TimeSpan.FromSeconds(30)))
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"process exited with {process.ExitCode}: {await diagnostics()}");
            }

            try
            {
                using var probe = new TcpClient();
                await probe.ConnectAsync("127.0.0.1", port);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(20);
            }
        }

        throw new TimeoutException($"nothing listened on {port}: {await diagnostics()}");
    }

    /// <summary>Resident set size of a process in bytes (VmRSS in /proc/PID/status).</summary>
    public static long ResidentBytes(Process process)
    {
        foreach (var line in File.ReadLines($"/proc/{process.Id}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
            }
        }

        throw new InvalidOperationException("no VmRSS");
    }

    public static async Task StopAsync(Process process)
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }

        process.Dispose();
    }
}
