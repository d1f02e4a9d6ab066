using System.Net;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using MockInference;
using Relay.Middleware.Configuration;

namespace Relay;

/// <summary>
/// Composes the Relay host: configuration from <c>config/relay.json</c>, appsettings and the environment;
/// YARP routes and clusters from the <c>ReverseProxy</c> section, or a default route <c>/v1/{**rest}</c> to
/// <c>Relay:Upstream:BaseUrl</c>, or, with neither, to the built-in simulated upstream. Composition only:
/// every behaviour lives in Relay.Middleware; the host adds the configuration files, h2c listeners and the demo
/// upstream.
/// </summary>
public static partial class RelayApp
{
    /// <summary>Builds the application (not started). <paramref name="configure"/> lets tests add settings.</summary>
    public static async Task<WebApplication> BuildAsync(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        // config/relay.json holds the documented defaults; appsettings, environment and command line override it.
        var defaults = new Microsoft.Extensions.Configuration.Json.JsonConfigurationSource
        {
            Path = Path.Combine(AppContext.BaseDirectory, "config", "relay.json"),
            Optional = true,
            ReloadOnChange = false,
        };
        defaults.ResolveFileProvider();
        builder.Configuration.Sources.Insert(0, defaults);
        configure?.Invoke(builder);

        ConfigureListeners(builder);

        // Every Relay setting (Kestrel's response buffer, the shutdown timeout, OTLP export, the default route to
        // Relay:Upstream:BaseUrl, the playground) is the package's work; the host adds the demo upstream only.
        WebApplication? demoUpstream = null;
        var routed = builder.Configuration.GetSection("ReverseProxy:Routes").GetChildren().Any();
        if (!routed && string.IsNullOrWhiteSpace(builder.Configuration["Relay:Upstream:BaseUrl"]))
        {
            demoUpstream = await MockInferenceServer.StartAsync("http://127.0.0.1:0");
            builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["Relay:Upstream:BaseUrl"] = demoUpstream.Urls.First() });
            builder.Services.PostConfigure<RelayOptions>(static o => o.Playground.Enabled ??= true);
        }

        builder.Services.AddRelay(builder.Configuration.GetSection(RelayOptions.SectionName));
        builder.Services.AddReverseProxy().LoadFromConfig(builder.Configuration.GetSection("ReverseProxy")).AddRelayTransforms();
        WithoutDataProtectionAtStart(builder.Services);

        var app = builder.Build();
        if (demoUpstream is not null)
        {
            Log.DemoUpstream(app.Logger, demoUpstream.Urls.First());
            app.Lifetime.ApplicationStopped.Register(() => demoUpstream.StopAsync().GetAwaiter().GetResult());
        }

        app.MapRelay();
        return app;
    }

    /// <summary>
    /// YARP's <c>AddReverseProxy</c> adds ASP.NET Core Data Protection, which only its session affinity cookies and
    /// headers use, and Data Protection's hosted service loads the key ring as the host starts: on a first start it
    /// creates a key and warns "No XML encryptor configured. Key ... may be persisted to storage in unencrypted
    /// form", about something Relay does not use. Without that hosted service nothing touches Data Protection at
    /// start; a cluster with YARP session affinity still gets its key (and the warning) on first use, where it is
    /// something to act on (keys shared by the replicas, encrypted at rest).
    /// </summary>
    private static void WithoutDataProtectionAtStart(IServiceCollection services)
    {
        for (var i = services.Count - 1; i >= 0; i--)
        {
            if (services[i].ServiceType == typeof(IHostedService)
                && services[i].ImplementationType is { Name: "DataProtectionHostedService", Namespace: { } ns }
                && ns.StartsWith("Microsoft.AspNetCore.DataProtection", StringComparison.Ordinal))
            {
                services.RemoveAt(i);
            }
        }
    }

    /// <summary>
    /// <c>--urls</c> works as for any ASP.NET Core app. <c>--H2cUrls</c> adds cleartext HTTP/2 (prior knowledge)
    /// listeners; Kestrel cannot serve HTTP/1.1 and h2c on one cleartext port, so h2c gets its own.
    /// </summary>
    private static void ConfigureListeners(WebApplicationBuilder builder)
    {
        var h2c = builder.Configuration["H2cUrls"];
        if (string.IsNullOrWhiteSpace(h2c))
        {
            return;
        }

        // Kestrel ignores --urls once endpoints are configured in code, so both lists are bound here.
        var urls = builder.Configuration[WebHostDefaults.ServerUrlsKey] ?? "http://localhost:8080";
        builder.WebHost.UseUrls();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            foreach (var url in Split(urls))
            {
                Listen(kestrel, url, HttpProtocols.Http1AndHttp2);
            }

            foreach (var url in Split(h2c))
            {
                Listen(kestrel, url, HttpProtocols.Http2);
            }
        });
    }

    private static IEnumerable<string> Split(string list) => list.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static void Listen(Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions kestrel, string url, HttpProtocols protocols)
    {
        var address = BindingAddress.Parse(url);
        void Configure(ListenOptions o) => o.Protocols = protocols;
        if (string.Equals(address.Host, "localhost", StringComparison.OrdinalIgnoreCase))
        {
            kestrel.ListenLocalhost(address.Port, Configure);
        }
        else if (IPAddress.TryParse(address.Host, out var ip))
        {
            kestrel.Listen(ip, address.Port, Configure);
        }
        else
        {
            kestrel.ListenAnyIP(address.Port, Configure);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "No upstream configured (Relay:Upstream:BaseUrl): relaying to the built-in simulated upstream (demo) at {Address}.", EventName = "DemoUpstream")]
        public static partial void DemoUpstream(ILogger logger, string address);
    }
}
