using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;

namespace MockInference;

/// <summary>Starts MockInference as its own Kestrel server, for tests and the benchmark.</summary>
public static class MockInferenceServer
{
    /// <summary>
    /// Builds, maps and starts a server on <paramref name="url"/> (port 0 picks a free port). Read the bound
    /// address from <c>app.Urls</c>. The caller owns the app: stop and dispose it.
    /// </summary>
    public static async Task<WebApplication> StartAsync(string url = "http://127.0.0.1:0", CancellationToken ct = default)
    {
        // No args and no content root files: the server must not pick up the host's appsettings or urls.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.WebHost.UseUrls(url);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Services.AddMockInference();
        var app = builder.Build();
        app.MapMockInference();
        await app.StartAsync(ct);
        return app;
    }
}
