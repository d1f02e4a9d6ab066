namespace Relay.LoadBench;

/// <summary>Where the benchmark finds what it starts.</summary>
internal sealed record BenchPaths(string RepoRoot, string WorkDir, string MockUrl, int MockPid)
{
    public string Built(string project, string dll) => Path.Combine(RepoRoot, project, "bin", "Release", "net10.0", dll);
}

/// <summary>
/// A started target: where to send requests and which process to measure (none for direct), and the state store it
/// uses (redis-server for resumable streams), measured on its own line.
/// </summary>
internal sealed class RunningTarget(TargetProcess? process, string h1Url, string? h2Url, RedisServer? stateStore = null) : IAsyncDisposable
{
    public TargetProcess? Process { get; } = process;

    public RedisServer? StateStore { get; } = stateStore;

    public string H1Url { get; } = h1Url;

    /// <summary>Cleartext HTTP/2 (prior knowledge) address, where the target has one.</summary>
    public string? H2Url { get; } = h2Url;

    public async ValueTask DisposeAsync()
    {
        if (Process is not null)
        {
            await Process.DisposeAsync();
        }

        if (StateStore is not null)
        {
            await StateStore.DisposeAsync();
        }
    }
}

/// <summary>
/// One proxy under test. <see cref="StartAsync"/> starts a fresh process pinned to <see cref="ProxyCore"/>.
/// <see cref="Unavailable"/> says why a target is skipped (not installed) instead of failing the run.
/// </summary>
internal abstract class Target(string name, string description)
{
    /// <summary>The proxy under test gets core 0; the load generator and MockInference share core 1.</summary>
    public const int ProxyCore = 0;

    public string Name { get; } = name;

    public string Description { get; } = description;

    /// <summary>Runs without <c>--targets</c>; the other third-party proxies run when named.</summary>
    public virtual bool Default => true;

    /// <summary>Runs in quick mode without <c>--targets</c> (quick mode must stay under 2 minutes).</summary>
    public virtual bool Quick => Default;

    /// <summary>A .NET process: its runtime counters are recorded.</summary>
    public virtual bool IsDotnet => false;

    /// <summary>Optional targets (a third-party gateway) are skipped with a reason when their probe fails.</summary>
    public virtual bool Optional => false;

    /// <summary>Headers every request to this target carries (a gateway's routing headers).</summary>
    public virtual IReadOnlyDictionary<string, string> Headers { get; } = new Dictionary<string, string>();

    /// <summary>Every stream must be resumable (a <c>Relay-Stream-Id</c> header, an <c>id:</c> on every event), or it is an error.</summary>
    public virtual bool Resumable => false;

    /// <summary>JSON members added to <c>stream_options</c> (Relay's <c>chunk_size</c>).</summary>
    public virtual string StreamOptionsExtra => "";

    public virtual string? Unavailable(BenchPaths paths) => null;

    /// <summary>Why this target skips a scenario that other targets run (<c>cancel</c>, <c>idle</c>, <c>stalled</c>), or null.</summary>
    public virtual string? NotMeasured(string scenario) => null;

    public abstract Task<RunningTarget> StartAsync(BenchPaths paths);

    protected static async Task<RunningTarget> Listening(TargetProcess process, int h1Port, int? h2Port)
    {
        var started = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            await process.WaitListeningAsync(h2Port is int p ? [h1Port, p] : [h1Port], TimeSpan.FromSeconds(30));
            Console.WriteLine($"   listening after {started.Elapsed.TotalSeconds:F2} s (start-up; CPU {ProcStat.Read(ProcStat.Tree(process.Pid)).CpuSeconds:F2} s)");
        }
        catch
        {
            await process.DisposeAsync();
            throw;
        }

        return new RunningTarget(process, $"http://127.0.0.1:{h1Port}", h2Port is int h2 ? $"http://127.0.0.1:{h2}" : null);
    }

    protected static string MockAuthority(BenchPaths paths) => new Uri(paths.MockUrl).Authority;

    protected static string Dir(BenchPaths paths, string name)
    {
        var dir = Path.Combine(paths.WorkDir, name + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    public static IReadOnlyList<Target> All { get; } =
    [
        new DirectTarget(),
        new RelayTarget("relay-passthrough", "Relay, pass-through (stream_options.chunk_size 1)", passThrough: true),
        new RelayTarget("relay-cadence", "Relay, default cadence (8 tokens or 20 ms)", passThrough: false),
        new RelayTarget("relay-resume", "Relay, pass-through, resumable streams (stream_options.resumable; Redis: redis-server on the proxy's core)", passThrough: true, resume: true),
        new PlainYarpTarget(),
        new NginxTarget(),
        new HaproxyTarget(),
        new CaddyTarget(),
        new PortkeyTarget(),
    ];
}

/// <summary>Straight to MockInference: the floor every other target is compared with.</summary>
internal sealed class DirectTarget() : Target("direct", "MockInference itself (the floor)")
{
    public static string? H2Url { get; set; }

    public override Task<RunningTarget> StartAsync(BenchPaths paths) => Task.FromResult(new RunningTarget(null, paths.MockUrl, H2Url));
}

internal sealed class RelayTarget(string name, string description, bool passThrough, IReadOnlyDictionary<string, string>? environment = null, bool resume = false) : Target(name, description)
{
    public override string StreamOptionsExtra => (passThrough ? ",\"chunk_size\":1" : "") + (resume ? ",\"resumable\":true" : "");

    public override bool IsDotnet => true;

    public override bool Resumable => resume;

    /// <summary>
    /// Relay in pass-through with other runtime settings (environment variables), for the runtime-settings
    /// experiments of docs/performance.md: <c>"pgo0:DOTNET_TieredPGO=0;gc:DOTNET_gcServer=1 DOTNET_GCgen0size=0x4000000"</c>
    /// adds targets <c>relay-passthrough+pgo0</c> and <c>relay-passthrough+gc</c>. <c>RELAY_DLL=path</c> is not
    /// an environment variable: it runs another build of Relay (a ReadyToRun publish, say) instead of bin/Release.
    /// </summary>
    public static IReadOnlyList<Target> Variants(string? spec) =>
        [.. (spec ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(variant =>
        {
            var (label, vars) = (variant.Split(':', 2)[0], variant.Split(':', 2).ElementAtOrDefault(1) ?? "");
            var env = vars.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(v => v.Split('=', 2)).ToDictionary(v => v[0], v => v.ElementAtOrDefault(1) ?? "");
            return (Target)new RelayTarget("relay-passthrough+" + label, $"Relay, pass-through, {vars}", passThrough: true, env);
        })];

    public override string? Unavailable(BenchPaths paths) =>
        !File.Exists(paths.Built("src/Relay", "Relay.dll")) ? "src/Relay is not built (bench/run.sh builds it)"
        : resume && RedisServer.Binary is null ? "redis-server is not installed (bench/setup.sh installs it)"
        : null;

    /// <summary>
    /// A resumable stream outlives its client for <c>Resume:DetachedSeconds</c> by design, so the cancellation storm
    /// (which times the upstream's abort) measures non-resumable streams only; the memory scenarios run on the
    /// pass-through targets.
    /// </summary>
    public override string? NotMeasured(string scenario) => resume && scenario is "cancel" or "idle" or "stalled"
        ? scenario == "cancel" ? "a resumable stream is not cancelled when its client leaves (Resume:DetachedSeconds)" : "memory scenarios run without resume"
        : null;

    public override async Task<RunningTarget> StartAsync(BenchPaths paths)
    {
        var (h1, h2) = (TargetProcess.FreePort(), TargetProcess.FreePort());
        var dll = environment?.GetValueOrDefault("RELAY_DLL") is { } other ? Path.GetFullPath(other, paths.RepoRoot) : paths.Built("src/Relay", "Relay.dll");
        var dir = Dir(paths, Name);
        List<string> args =
        [
            dll,
            "--urls", $"http://127.0.0.1:{h1}",
            "--H2cUrls", $"http://127.0.0.1:{h2}",
            "--Relay:Upstream:BaseUrl", paths.MockUrl,
        ];
        var env = new Dictionary<string, string>(environment ?? new Dictionary<string, string>());
        RedisServer? redis = null;
        if (resume)
        {
            // Redis beside the proxy (its cost is the deployment's too; measured on its own line), the route resumable,
            // and the keys that Redis state requires (random per run, passed in the environment, not on the command line).
            redis = await RedisServer.StartAsync(ProxyCore, dir);
            args.AddRange(["--Relay:State:Redis", redis.ConnectionString, "--Relay:Resume:Enabled", "true"]);
            env["Relay__Tickets__SigningKey"] = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
            env["Relay__Tickets__EncryptionKey"] = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        }

        try
        {
            var running = await Listening(TargetProcess.Start(Name, ProxyCore, dir, "dotnet", args, env), h1, h2);
            return redis is null ? running : new RunningTarget(running.Process, running.H1Url, running.H2Url, redis);
        }
        catch
        {
            if (redis is not null)
            {
                await redis.DisposeAsync();
            }

            throw;
        }
    }
}

/// <summary>The same Kestrel + YARP stack with YARP's defaults and none of Relay's work (bench/PlainYarp).</summary>
internal sealed class PlainYarpTarget() : Target("plain-yarp", "Kestrel + YARP 2.3, default settings (bench/PlainYarp)")
{
    public override bool Quick => false;

    public override bool IsDotnet => true;

    public override string? Unavailable(BenchPaths paths) =>
        File.Exists(paths.Built("bench/PlainYarp", "PlainYarp.dll")) ? null : "bench/PlainYarp is not built (bench/run.sh builds it)";

    public override Task<RunningTarget> StartAsync(BenchPaths paths)
    {
        var (h1, h2) = (TargetProcess.FreePort(), TargetProcess.FreePort());
        var dll = paths.Built("bench/PlainYarp", "PlainYarp.dll");
        var process = TargetProcess.Start(Name, ProxyCore, Path.GetDirectoryName(dll)!, "dotnet",
        [
            dll, "--urls", $"http://127.0.0.1:{h1}", "--H2cUrls", $"http://127.0.0.1:{h2}", "--Upstream", paths.MockUrl + "/",
        ]);
        return Listening(process, h1, h2);
    }
}

/// <summary>nginx (Debian): <c>proxy_buffering off</c>, HTTP/1.1 keep-alive to the upstream, one worker.</summary>
internal sealed class NginxTarget() : Target("nginx", "nginx (Debian), proxy_buffering off, keep-alive upstream")
{
    private static readonly string? s_binary = new[] { "/usr/sbin/nginx", "/usr/bin/nginx" }.FirstOrDefault(File.Exists);

    public override string? Unavailable(BenchPaths paths) => s_binary is null ? "nginx is not installed (bench/setup.sh installs it)" : null;

    public override async Task<RunningTarget> StartAsync(BenchPaths paths)
    {
        var dir = Dir(paths, Name);
        var (h1, h2) = (TargetProcess.FreePort(), TargetProcess.FreePort());
        var config = $$"""
            daemon off;
            master_process off;
            worker_processes 1;
            worker_rlimit_nofile 20000;
            pid {{dir}}/nginx.pid;
            error_log {{dir}}/error.log warn;
            events { worker_connections 19500; }
            http {
                access_log off;
                client_body_temp_path {{dir}}/client_body;
                proxy_temp_path {{dir}}/proxy;
                fastcgi_temp_path {{dir}}/fastcgi;
                uwsgi_temp_path {{dir}}/uwsgi;
                scgi_temp_path {{dir}}/scgi;
                keepalive_requests 100000;
                upstream mock {
                    server {{MockAuthority(paths)}};
                    keepalive 1024;
                }
                server {
                    listen 127.0.0.1:{{h1}} backlog=4096;
                    listen 127.0.0.1:{{h2}} http2 backlog=4096;
                    location / {
                        proxy_pass http://mock;
                        proxy_http_version 1.1;
                        proxy_set_header Connection "";
                        proxy_buffering off;
                        proxy_read_timeout 600s;
                    }
                }
            }
            """;
        var path = Path.Combine(dir, "nginx.conf");
        await File.WriteAllTextAsync(path, config);
        return await Listening(TargetProcess.Start(Name, ProxyCore, dir, s_binary!, ["-p", dir, "-c", path]), h1, h2);
    }
}

/// <summary>HAProxy (Debian), HTTP mode, <c>option http-no-delay</c> (its setting for streaming), one thread, keep-alive both sides.</summary>
internal sealed class HaproxyTarget() : Target("haproxy", "HAProxy (Debian), mode http, option http-no-delay, one thread")
{
    public override bool Default => false;

    private static readonly string? s_binary = new[] { "/usr/sbin/haproxy", "/usr/bin/haproxy" }.FirstOrDefault(File.Exists);

    public override string? Unavailable(BenchPaths paths) => s_binary is null ? "haproxy is not installed (bench/setup.sh installs it)" : null;

    public override async Task<RunningTarget> StartAsync(BenchPaths paths)
    {
        var dir = Dir(paths, Name);
        var (h1, h2) = (TargetProcess.FreePort(), TargetProcess.FreePort());
        // maxconn 9500: two sockets per stream must fit the 20,000 open files this container allows a process.
        var config = $"""
            global
                maxconn 9500
                nbthread 1
            defaults
                mode http
                timeout connect 5s
                timeout client 600s
                timeout server 600s
                maxconn 9500
                # Streaming: send each chunk at once instead of waiting for more (MSG_MORE) to fill packets.
                option http-no-delay
            frontend bench
                bind 127.0.0.1:{h1}
                bind 127.0.0.1:{h2} proto h2
                default_backend mock
            backend mock
                server mock {MockAuthority(paths)} maxconn 9500
            """;
        var path = Path.Combine(dir, "haproxy.cfg");
        // HAProxy rejects a configuration whose last line has no line feed.
        await File.WriteAllTextAsync(path, config + "\n");
        return await Listening(TargetProcess.Start(Name, ProxyCore, dir, s_binary!, ["-db", "-f", path]), h1, h2);
    }
}

/// <summary>Caddy (Debian): <c>reverse_proxy</c> with <c>flush_interval -1</c>; h1 and h2c on one port.</summary>
internal sealed class CaddyTarget() : Target("caddy", "Caddy (Debian), reverse_proxy flush_interval -1")
{
    public override bool Default => false;

    private static readonly string? s_binary = new[] { "/usr/bin/caddy", "/usr/local/bin/caddy" }.FirstOrDefault(File.Exists);

    public override string? Unavailable(BenchPaths paths) => s_binary is null ? "caddy is not installed (bench/setup.sh installs it)" : null;

    public override async Task<RunningTarget> StartAsync(BenchPaths paths)
    {
        var dir = Dir(paths, Name);
        var port = TargetProcess.FreePort();
        var config = $$"""
            {
                admin off
                auto_https off
                servers {
                    protocols h1 h2c
                }
            }
            http://127.0.0.1:{{port}} {
                reverse_proxy {{MockAuthority(paths)}} {
                    flush_interval -1
                }
            }
            """;
        var path = Path.Combine(dir, "Caddyfile");
        await File.WriteAllTextAsync(path, config);
        var environment = new Dictionary<string, string> { ["HOME"] = dir, ["XDG_DATA_HOME"] = dir, ["XDG_CONFIG_HOME"] = dir };
        var process = TargetProcess.Start(Name, ProxyCore, dir, s_binary!, ["run", "--config", path, "--adapter", "caddyfile"], environment);
        var running = await Listening(process, port, null);
        return new RunningTarget(running.Process, running.H1Url, running.H1Url);
    }
}

/// <summary>
/// Portkey's open-source AI gateway (npm <c>@portkey-ai/gateway</c>, installed by bench/setup.sh under
/// bench/.tools), pointed at MockInference with <c>x-portkey-custom-host</c>; the mock's knobs travel in
/// <c>x-portkey-forward-headers</c>. Optional: skipped with the probe's error when it cannot stream.
/// </summary>
internal sealed class PortkeyTarget() : Target("portkey", "Portkey AI gateway (npm @portkey-ai/gateway, Node.js)")
{
    public override bool Default => false;

    private string _mockUrl = "";

    public override bool Optional => true;

    public override IReadOnlyDictionary<string, string> Headers => new Dictionary<string, string>
    {
        ["x-portkey-provider"] = "openai",
        ["x-portkey-custom-host"] = _mockUrl + "/v1",
        ["x-portkey-forward-headers"] = "x-mock-tokens-per-second,x-mock-ttft-ms,x-mock-seed,x-mock-stall-after-tokens,x-mock-stall-ms",
        ["authorization"] = "Bearer benchmark",
    };

    private static string Script(BenchPaths paths) =>
        Path.Combine(paths.RepoRoot, "bench", ".tools", "portkey", "node_modules", "@portkey-ai", "gateway", "build", "start-server.js");

    public override string? Unavailable(BenchPaths paths) =>
        File.Exists(Script(paths)) ? null : "@portkey-ai/gateway is not installed under bench/.tools/portkey (bench/setup.sh installs it when npm is present)";

    public override Task<RunningTarget> StartAsync(BenchPaths paths)
    {
        _mockUrl = paths.MockUrl;
        var port = TargetProcess.FreePort();
        var process = TargetProcess.Start(Name, ProxyCore, Dir(paths, Name), "node", [Script(paths), $"--port={port}", "--headless"]);
        return Listening(process, port, null);
    }
}
