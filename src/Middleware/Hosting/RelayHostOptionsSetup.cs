using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Relay.Middleware.Configuration;

namespace Relay.Middleware.Hosting;

/// <summary>
/// The host waits for Relay's drain (<c>Relay:Shutdown:DrainSeconds</c>) and the final error events before it stops
/// the server: its shutdown timeout becomes the drain plus <see cref="FinalEventsAllowance"/>, unless the app set a
/// longer one.
/// </summary>
internal sealed class RelayHostOptionsSetup(IOptions<RelayOptions> options) : IConfigureOptions<HostOptions>
{
    /// <summary>Time after the drain for the streams' final error events and the server's own stop.</summary>
    internal static readonly TimeSpan FinalEventsAllowance = TimeSpan.FromSeconds(10);

    public void Configure(HostOptions host)
    {
        var needed = TimeSpan.FromSeconds(options.Value.Shutdown.DrainSeconds) + FinalEventsAllowance;
        if (host.ShutdownTimeout < needed)
        {
            host.ShutdownTimeout = needed;
        }
    }
}
