using System.Diagnostics;

namespace Relay.IntegrationTests.Infrastructure;

/// <summary>
/// A real redis-server (Debian package) on a free loopback port, without persistence (<c>--save "" --appendonly no</c>),
/// owned by the test: it can be stopped and started again on the same port, as an outage and a recovery.
/// </summary>
public sealed class RedisProcess : IAsyncDisposable
{
    private readonly string _dir;
    private Process? _process;

    private RedisProcess(string dir, int port)
    {
        _dir = dir;
        Port = port;
    }

    public int Port { get; }

    /// <summary>The StackExchange.Redis connection string.</summary>
    public string ConnectionString => $"127.0.0.1:{Port}";

    public static string? Binary { get; } = new[] { "/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server" }.FirstOrDefault(File.Exists);

    public const string MissingReason = "redis-server is not installed (apt-get install redis-server); .ci/run installs it.";

    public static async Task<RedisProcess> StartAsync()
    {
        if (Binary is null)
        {
            throw new InvalidOperationException(MissingReason);
        }

        var redis = new RedisProcess(Directory.CreateTempSubdirectory("relay-redis-").FullName, FreePort.Next());
        await redis.StartAgainAsync();
        return redis;
    }

    /// <summary>Starts the server (again, after <see cref="StopAsync"/>) on the same port, empty.</summary>
    public async Task StartAgainAsync()
    {
        _process = Process.Start(new ProcessStartInfo(Binary!, ["--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", _dir, "--logfile", Path.Combine(_dir, "redis.log")])
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        })!;
        await DotnetProcess.WaitListeningAsync(_process, Port, () => Task.FromResult(Log()), TimeSpan.FromSeconds(10));
    }

    /// <summary>Kills the server: every connection to it drops.</summary>
    public async Task StopAsync()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process?.Dispose();
        _process = null;
    }

    public string Log()
    {
        var path = Path.Combine(_dir, "redis.log");
        return File.Exists(path) ? File.ReadAllText(path) : "";
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>A fact that is skipped, with a clear reason, when redis-server is not installed.</summary>
public sealed class RedisFactAttribute : FactAttribute
{
    public RedisFactAttribute()
    {
        if (RedisProcess.Binary is null)
        {
            Skip = RedisProcess.MissingReason;
        }
    }
}

/// <summary>A fact that needs redis-server and nginx: skipped, with the reason, when either is missing.</summary>
public class RedisAndNginxFactAttribute : FactAttribute
{
    public RedisAndNginxFactAttribute()
    {
        if (RedisProcess.Binary is null)
        {
            Skip = RedisProcess.MissingReason;
        }
        else if (NginxProcess.Binary is null)
        {
            Skip = "nginx is not installed (apt-get install nginx); .ci/run installs it.";
        }
    }
}

/// <summary>A fact that needs redis-server, nginx and the Chromium driver.</summary>
public sealed class RedisNginxBrowserFactAttribute : RedisAndNginxFactAttribute
{
    public RedisNginxBrowserFactAttribute()
    {
        Skip ??= BrowserDriver.SkipReason;
    }
}
