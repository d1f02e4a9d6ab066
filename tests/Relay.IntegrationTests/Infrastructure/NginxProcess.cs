using System.Diagnostics;

namespace Relay.IntegrationTests.Infrastructure;

/// <summary>
/// A real nginx (Debian package) on a free loopback port, with a generated config, in the foreground and
/// without a master process so the test owns its lifetime.
/// </summary>
public sealed class NginxProcess : IAsyncDisposable
{
    private readonly string _dir;
    private Process _process;

    private NginxProcess(Process process, string dir, int port)
    {
        _process = process;
        _dir = dir;
        Port = port;
    }

    public int Port { get; }

    public string Url => $"http://127.0.0.1:{Port}";

    public static string? Binary { get; } = new[] { "/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx" }.FirstOrDefault(File.Exists);

    /// <summary>
    /// Starts nginx proxying to <paramref name="upstream"/>. <paramref name="locationExtra"/> adds directives to
    /// the location (e.g. <c>proxy_buffering off;</c>); the defaults are nginx's, so buffering is on.
    /// </summary>
    public static Task<NginxProcess> StartAsync(string upstream, string locationExtra = "") => StartAsync([upstream], locationExtra);

    /// <summary>Starts nginx balancing round-robin (its default) over <paramref name="upstreams"/>.</summary>
    public static async Task<NginxProcess> StartAsync(IReadOnlyList<string> upstreams, string locationExtra = "")
    {
        if (Binary is null)
        {
            throw new InvalidOperationException("nginx is not installed (apt-get install nginx); .ci/run installs it.");
        }

        var dir = Directory.CreateTempSubdirectory("relay-nginx-").FullName;
        var port = FreePort.Next();
        var config = $$"""
            daemon off;
            master_process off;
            worker_processes 1;
            pid {{dir}}/nginx.pid;
            error_log {{dir}}/error.log warn;
            events { worker_connections 1024; }
            http {
                access_log off;
                client_body_temp_path {{dir}}/client_body;
                proxy_temp_path {{dir}}/proxy;
                fastcgi_temp_path {{dir}}/fastcgi;
                uwsgi_temp_path {{dir}}/uwsgi;
                scgi_temp_path {{dir}}/scgi;
                upstream backend {
                    {{string.Join("\n", upstreams.Select(static u => $"server {new Uri(u).Authority};"))}}
                    keepalive 16;
                }
                server {
                    listen 127.0.0.1:{{port}};
                    location / {
                        proxy_pass http://backend;
                        proxy_http_version 1.1;
                        proxy_set_header Connection "";
                        {{locationExtra}}
                    }
                }
            }
            """;
        var path = Path.Combine(dir, "nginx.conf");
        await File.WriteAllTextAsync(path, config);
        var nginx = new NginxProcess(Launch(dir), dir, port);
        await nginx.WaitListeningAsync();
        return nginx;
    }

    private static Process Launch(string dir) => Process.Start(new ProcessStartInfo(Binary!, ["-p", dir, "-c", Path.Combine(dir, "nginx.conf")])
    {
        RedirectStandardError = true,
        RedirectStandardOutput = true,
    })!;

    /// <summary>Kills nginx (every connection through it drops) and starts it again on the same port.</summary>
    public async Task RestartAsync()
    {
        _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
        _process.Dispose();
        _process = Launch(_dir);
        await WaitListeningAsync();
    }

    private Task WaitListeningAsync() => DotnetProcess.WaitListeningAsync(
        _process, Port, async () => $"nginx: {(_process.HasExited ? await _process.StandardError.ReadToEndAsync() : "")} {ErrorLog()}", TimeSpan.FromSeconds(10));

    public string ErrorLog()
    {
        var path = Path.Combine(_dir, "error.log");
        return File.Exists(path) ? File.ReadAllText(path) : "";
    }

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

/// <summary>A fact that is skipped, with a clear reason, when nginx is not installed.</summary>
public sealed class NginxFactAttribute : FactAttribute
{
    public NginxFactAttribute()
    {
        if (NginxProcess.Binary is null)
        {
            Skip = "nginx is not installed (apt-get install nginx); .ci/run installs it.";
        }
    }
}
