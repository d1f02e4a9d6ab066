using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;
using Relay.Middleware.Configuration;

namespace Relay.Middleware.Hosting;

/// <summary>
/// Kestrel as Relay needs it, for the host and for an app that adds the package alike: the response buffer is
/// <c>Relay:Backpressure:MaxBufferedBytes</c> (at most this much is held for a client before writes wait, and Relay
/// stops reading the upstream), and no <c>Server</c> header (the upstream's is removed too, as nginx hides it).
/// </summary>
internal sealed class RelayKestrelOptionsSetup(IOptions<RelayOptions> options) : IConfigureOptions<KestrelServerOptions>
{
    public void Configure(KestrelServerOptions kestrel)
    {
        kestrel.Limits.MaxResponseBufferSize = options.Value.Backpressure.MaxBufferedBytes;
        kestrel.AddServerHeader = false;
    }
}
