using System.Net;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using MockInference;
using Relay.Middleware.Configuration;
using Yarp.ReverseProxy.Configuration;

namespace Relay;

/// <summary>
/// Composes the Relay host: configuration from <c>config/relay.json</c>, appsettings and the environment;
/// YARP routes and clusters from the <c>ReverseProxy</c> section, or a default route <c>/v1/{**rest}</c> to
/// <c>Relay:Upstream:BaseUrl</c>, or, with neither, to the built-in simulated upstream. Composition only:
/// every behaviour lives in Relay.Middleware.
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
        builder.WebHost.ConfigureKestrel(static (context, kestrel) =>
        {
            var backpressure = context.Configuration.GetSection("Relay:Backpressure").Get<BackpressureOptions>() ?? new BackpressureOptions();
            // Backpressure: at most this much is held for a client before writes wait, and Relay stops reading
            // the upstream.
            kestrel.Limits.MaxResponseBufferSize = backpressure.MaxBufferedBytes;
            kestrel.AddServerHeader = false;
        });

        builder.Services.AddRelay(builder.Configuration.GetSection(RelayOptions.SectionName));
        ConfigureTelemetry(builder);
        var drain = builder.Configuration.GetValue("Relay:Shutdown:DrainSeconds", 10.0);
        // The host must wait for the drain and the final error events before it stops the server.
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(drain + 10));
        var proxy = builder.Services.AddReverseProxy().AddRelayTransforms();

        WebApplication? demoUpstream = null;
        if (builder.Configuration.GetSection("ReverseProxy:Routes").GetChildren().Any())
        {
            proxy.LoadFromConfig(builder.Configuration.GetSection("ReverseProxy"));
        }
        else
        {
            var baseUrl = builder.Configuration["Relay:Upstream:BaseUrl"];
            if (string.IsNullOrWhiteSpace(baseUrl))
            {
                demoUpstream = await MockInferenceServer.StartAsync("http://127.0.0.1:0");
                baseUrl = demoUpstream.Urls.First();
            }

            var (routes, clusters) = DefaultRoute(baseUrl);
            proxy.LoadFromMemory(routes, clusters);
        }

        var app = builder.Build();
        if (demoUpstream is not null)
        {
            Log.DemoUpstream(app.Logger, demoUpstream.Urls.First());
            app.Lifetime.ApplicationStopped.Register(() => demoUpstream.StopAsync().GetAwaiter().GetResult());
        }

        app.UseRelayErrors();
        // Ticket URLs become the chat request they stand for before routing picks the route.
        app.UseRelayTickets();
        app.UseRouting();
        app.UseCors();
        if (app.Configuration.GetValue<bool?>("Relay:Playground:Enabled") ?? demoUpstream is not null)
        {
            app.MapRelayPlayground();
        }

        app.MapReverseProxy(static pipeline =>
        {
            pipeline.UseRelay();
            pipeline.UseSessionAffinity();
            pipeline.UseLoadBalancing();
            pipeline.UsePassiveHealthChecks();
        });
        app.MapRelayNotFound();
        return app;
    }

    /// <summary>
    /// The default route: every <c>/v1/</c> path to the upstream. A base URL ending in <c>/v1</c> (the form
    /// OpenAI SDKs use) is accepted: the <c>/v1</c> is not repeated.
    /// </summary>
    internal static (RouteConfig[] Routes, ClusterConfig[] Clusters) DefaultRoute(string baseUrl)
    {
        var address = baseUrl.TrimEnd('/');
        if (address.EndsWith("/v1", StringComparison.OrdinalIgnoreCase))
        {
            address = address[..^3];
        }

        var route = new RouteConfig { RouteId = "default", ClusterId = "default", Match = new RouteMatch { Path = "/v1/{**rest}" } };
        var cluster = new ClusterConfig
        {
            ClusterId = "default",
            Destinations = new Dictionary<string, DestinationConfig> { ["upstream"] = new() { Address = address + "/" } },
        };
        return ([route], [cluster]);
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
        var urls = builder.Configuration[WebHostDefaults.ServerUrlsKey] ?? "http://localhost:5000";
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
