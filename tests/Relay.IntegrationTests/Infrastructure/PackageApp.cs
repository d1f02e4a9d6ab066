using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace Relay.IntegrationTests.Infrastructure;

/// <summary>
/// An app as a package user writes it (a <c>dotnet new web</c> app with the package added): nothing of the Relay
/// host, only <c>AddRelay</c>, YARP's <c>AddReverseProxy().LoadFromConfig(...).AddRelayTransforms()</c> and
/// <c>MapRelay()</c>, configured only through the <c>Relay</c> (and <c>ReverseProxy</c>) keys.
/// </summary>
public sealed class PackageApp : IAsyncDisposable
{
    private PackageApp(WebApplication app) => App = app;

    public WebApplication App { get; }

    public string Url => MockUpstreamFixture.Addresses(App).First();

    public FakeLogCollector Logs => App.Services.GetFakeLogCollector();

    /// <summary>
    /// Builds and starts the app. <paramref name="services"/> replaces the usual registrations,
    /// <paramref name="map"/> the usual <c>app.MapRelay()</c>.
    /// </summary>
    public static async Task<PackageApp> StartAsync(IDictionary<string, string?> settings, Action<WebApplicationBuilder>? services = null, Action<WebApplication>? map = null)
    {
        var app = Build(settings, services);
        (map ?? (static a => a.MapRelay()))(app);
        await app.StartAsync();
        return new PackageApp(app);
    }

    /// <summary>Builds the app without mapping or starting it.</summary>
    public static WebApplication Build(IDictionary<string, string?> settings, Action<WebApplicationBuilder>? services = null)
    {
        var builder = WebApplication.CreateBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Logging.ClearProviders();
        builder.Logging.AddFakeLogging();
        if (services is null)
        {
            builder.Services.AddRelay(builder.Configuration.GetSection("Relay"));
            builder.Services.AddReverseProxy().LoadFromConfig(builder.Configuration.GetSection("ReverseProxy")).AddRelayTransforms();
        }
        else
        {
            services(builder);
        }

        return builder.Build();
    }

    public async ValueTask DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
    }
}
