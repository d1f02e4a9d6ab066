using System.Net;
using System.Net.Sockets;

namespace Relay.IntegrationTests.Infrastructure;

public static class FreePort
{
    /// <summary>A free loopback port (for processes that cannot report a port-0 binding back, like nginx).</summary>
    public static int Next()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
