using System.IO.Compression;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.ResponseCompression;
using Microsoft.Extensions.DependencyInjection;

namespace Relay.Middleware.Compression;

/// <summary>Registers the response compression that routes opt into with <c>Compression:Enabled</c>.</summary>
internal static class RelayCompressionExtensions
{
    /// <summary>
    /// Brotli and gzip at their fastest levels (a stream is compressed as it is produced; a higher level costs CPU
    /// per token and gains little on small flushed blocks), for event streams and JSON, over HTTPS too (the route
    /// opts in, see BREACH in docs/operations.md, "Compression").
    /// </summary>
    public static IServiceCollection AddRelayCompression(this IServiceCollection services)
    {
        services.AddResponseCompression(static o =>
        {
            o.EnableForHttps = true;
            o.MimeTypes = ["text/event-stream", "application/json"];
            o.Providers.Add<BrotliCompressionProvider>();
            o.Providers.Add<GzipCompressionProvider>();
        });
        services.Configure<BrotliCompressionProviderOptions>(static o => o.Level = CompressionLevel.Fastest);
        services.Configure<GzipCompressionProviderOptions>(static o => o.Level = CompressionLevel.Fastest);
        return services;
    }
}
