using System.Collections.Concurrent;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Relay.IntegrationTests.Infrastructure;

/// <summary>An OTLP/HTTP receiver: keeps every request body by path (protobuf keeps names as plain UTF-8).</summary>
public sealed class OtlpCollector : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, ConcurrentQueue<byte[]>> _bodies = new();

    private OtlpCollector(WebApplication app) => _app = app;

    public string Url => MockUpstreamFixture.Addresses(_app).First();

    public static async Task<OtlpCollector> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var collector = new OtlpCollector(app);
        app.MapPost("/v1/{signal}", async (HttpContext context, string signal) =>
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            collector._bodies.GetOrAdd("/v1/" + signal, _ => new()).Enqueue(body.ToArray());
            return Results.Ok();
        });
        await app.StartAsync();
        return collector;
    }

    public string Received(string path) =>
        _bodies.TryGetValue(path, out var bodies) ? string.Concat(bodies.Select(b => Encoding.UTF8.GetString(b))) : "";

    /// <summary>Waits until what arrived at <paramref name="path"/> names every one of <paramref name="names"/> (up to <see cref="Deadline.Default"/>).</summary>
    public async Task WaitForAsync(string path, params string[] names)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!names.All(n => Received(path).Contains(n, StringComparison.Ordinal)))
        {
            Assert.True(clock.Elapsed < Deadline.Default, $"{path} never received {string.Join(", ", names.Where(n => !Received(path).Contains(n, StringComparison.Ordinal)))}");
            await Task.Delay(20);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
