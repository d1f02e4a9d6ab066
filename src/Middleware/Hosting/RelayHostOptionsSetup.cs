using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Relay.Middleware.Configuration;

namespace Relay.Middleware.Hosting;

/// <summary>
/// The host waits for Relay's drain (<c>Relay:Shutdown:DrainSeconds</c>) and the final error events before it stops
/// the server: its shutdown timeout becomes the drain plus <see cref="FinalEventsAllowance"/>, as in the Relay host
/// (not the host's default 30 s: the server waits that long for connections that do not close, WebSockets among them).
/// An app that wants another timeout sets it with <c>PostConfigure&lt;HostOptions&gt;</c>.
/// </summary>
internal sealed class RelayHostOptionsSetup(IOptions<RelayOptions> options) : IConfigureOptions<HostOptions>
{
    /// <summary>Time after the drain for the streams' final error events and the server's own stop.</summary>
    internal static readonly TimeSpan FinalEventsAllowance = TimeSpan.FromSeconds(10);

    public void Configure(HostOptions host)
    {
        host.ShutdownTimeout = TimeSpan.FromSeconds(options.Value.Shutdown.DrainSeconds) + FinalEventsAllowance;
    }
}
