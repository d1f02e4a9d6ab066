using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using MockInference;

namespace Relay.IntegrationTests.Infrastructure;

/// <summary>The simulated upstream over TLS (HTTP/1.1 and HTTP/2 by ALPN) with a given server certificate, on a loopback port.</summary>
public sealed class TlsMockUpstream : IAsyncDisposable
{
    private readonly WebApplication _app;

    private TlsMockUpstream(WebApplication app, HttpClient client)
    {
        _app = app;
        Client = client;
        Url = MockUpstreamFixture.Addresses(app).First();
        Port = new Uri(Url).Port;
    }

    /// <summary><c>https://127.0.0.1:port</c>.</summary>
    public string Url { get; }

    public int Port { get; }

    /// <summary>A client that trusts the upstream's CA, for the mock's records.</summary>
    public HttpClient Client { get; }

    /// <summary>
    /// Starts the upstream with <paramref name="certificate"/>; <paramref name="client"/> (disposed with the upstream)
    /// warms it up unless <paramref name="warmUp"/> is false (a certificate the client does not accept).
    /// </summary>
    public static async Task<TlsMockUpstream> StartAsync(X509Certificate2 certificate, HttpClient client, bool warmUp = true)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.WebHost.UseKestrelHttpsConfiguration();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen =>
        {
            listen.Protocols = HttpProtocols.Http1AndHttp2;
            listen.UseHttps(certificate);
        }));
        builder.Logging.ClearProviders();
        builder.Services.AddMockInference();
        var app = builder.Build();
        app.MapMockInference();
        await app.StartAsync();
        var upstream = new TlsMockUpstream(app, client);
        if (warmUp)
        {
            await MockUpstreamFixture.WarmUpAsync(client, upstream.Url);
        }

        return upstream;
    }

    public Task<JsonElement> WaitForRecordAsync(string requestId, Func<JsonElement, bool> until, TimeSpan? timeout = null)
        => MockRecords.WaitAsync(Client, Url, requestId, until, timeout);

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
