using Yarp.ReverseProxy.Configuration;

// The load benchmark's "plain YARP" target: the same stack as Relay (Kestrel + YARP 2.3, one route to one
// destination) with YARP's default settings and none of Relay's work, so the difference to Relay is what
// Relay's middleware and stream loop cost. Run: dotnet PlainYarp.dll --urls http://127.0.0.1:P --Upstream http://127.0.0.1:M
// (--H2cUrls adds a prior-knowledge HTTP/2 listener, as Relay has).
var builder = WebApplication.CreateBuilder(args);
var upstream = builder.Configuration["Upstream"]
    ?? throw new InvalidOperationException("Set --Upstream to the upstream base address.");
var h2c = builder.Configuration["H2cUrls"];
if (!string.IsNullOrWhiteSpace(h2c))
{
    var urls = builder.Configuration[WebHostDefaults.ServerUrlsKey] ?? "http://127.0.0.1:5000";
    builder.WebHost.UseUrls();
    builder.WebHost.ConfigureKestrel(kestrel =>
    {
        Listen(kestrel, urls, Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http1AndHttp2);
        Listen(kestrel, h2c, Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http2);
    });
}

builder.WebHost.ConfigureKestrel(static kestrel => kestrel.AddServerHeader = false);
builder.Services.AddReverseProxy().LoadFromMemory(
    [new RouteConfig { RouteId = "default", ClusterId = "default", Match = new RouteMatch { Path = "/v1/{**rest}" } }],
    [new ClusterConfig
    {
        ClusterId = "default",
        Destinations = new Dictionary<string, DestinationConfig> { ["upstream"] = new() { Address = upstream } },
    }]);

var app = builder.Build();
app.MapReverseProxy();
app.Run();

static void Listen(Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions kestrel, string url, Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols protocols)
{
    var uri = new Uri(url);
    kestrel.Listen(System.Net.IPAddress.Parse(uri.Host), uri.Port, o => o.Protocols = protocols);
}
