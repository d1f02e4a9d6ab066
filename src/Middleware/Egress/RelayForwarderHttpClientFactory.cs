using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Relay.Middleware.Configuration;
using Yarp.ReverseProxy.Forwarder;

namespace Relay.Middleware.Egress;

/// <summary>
/// YARP's forwarder <see cref="HttpClient"/> factory with Relay's egress settings, for corporate networks:
/// <list type="bullet">
/// <item>A forward proxy. YARP's default client has <c>UseProxy = false</c>, so <c>HTTPS_PROXY</c> was ignored. A
/// cluster with <c>HttpClient:WebProxy</c> uses that proxy (YARP's own setting); every other cluster uses
/// <see cref="HttpClient.DefaultProxy"/>, which reads <c>HTTPS_PROXY</c>, <c>HTTP_PROXY</c>, <c>ALL_PROXY</c> and
/// <c>NO_PROXY</c> (nothing set: direct, as before).</item>
/// <item>Proxy credentials never travel in a URI. A <c>WebProxy:Address</c> with <c>user:password@</c> gets them as a
/// <see cref="NetworkCredential"/> (YARP would put the address, password included, into the proxy URI, which
/// <see cref="HttpRequestException"/> messages quote, and SocketsHttpHandler does not authenticate with it); logs
/// show proxy addresses with the credentials replaced by <c>***</c>.</item>
/// <item>A private CA (TLS inspection): certificates the system trusts stay trusted, and a CA bundle
/// (<c>Relay:Upstream:CaBundlePath</c>, or cluster metadata <c>Relay.CaBundlePath</c>) adds roots; validation is never
/// switched off (see <see cref="UpstreamCertificateValidator"/>).</item>
/// </list>
/// </summary>
internal sealed partial class RelayForwarderHttpClientFactory : ForwarderHttpClientFactory
{
    /// <summary>Cluster metadata naming a PEM bundle of extra trusted roots for that cluster's upstreams.</summary>
    internal const string CaBundleMetadataKey = "Relay.CaBundlePath";

    private readonly IOptions<RelayOptions> _options;
    private readonly ILogger _logger;
    private int _environmentProxyLogged;

    public RelayForwarderHttpClientFactory(ILogger<ForwarderHttpClientFactory> yarpLogger, IOptions<RelayOptions> options, ILogger<RelayForwarderHttpClientFactory> logger)
        : base(yarpLogger)
    {
        _options = options;
        _logger = logger;
    }

    /// <summary>A client is rebuilt when the cluster's CA bundle changes too (YARP compares only the HttpClient config).</summary>
    protected override bool CanReuseOldClient(ForwarderHttpClientContext context)
        => base.CanReuseOldClient(context) && CaBundlePath(context.OldMetadata) == CaBundlePath(context.NewMetadata);

    protected override void ConfigureHandler(ForwarderHttpClientContext context, SocketsHttpHandler handler)
    {
        base.ConfigureHandler(context, handler);

        // A response Relay stops reading early (the client left, a timeout, a schema violation) must stop the upstream,
        // not be drained for connection reuse: draining an LLM stream reads, and pays for, the tokens nobody will see.
        // With no drain, disposing an unfinished HTTP/1.1 response closes its connection (HTTP/2 resets the stream).
        handler.MaxResponseDrainSize = 0;
        ConfigureProxy(context, handler);
        ConfigureTrust(context, handler);
    }

    private void ConfigureProxy(ForwarderHttpClientContext context, SocketsHttpHandler handler)
    {
        if (context.NewConfig.WebProxy is { Address: { } address } config)
        {
            if (address.UserInfo.Length > 0)
            {
                handler.Proxy = new WebProxy(ProxyAddress.WithoutUserInfo(address), config.BypassOnLocal.GetValueOrDefault(false))
                {
                    Credentials = ProxyAddress.Credentials(address),
                };
            }

            Log.ClusterProxy(_logger, context.ClusterId, ProxyAddress.Redact(address.OriginalString), config.BypassOnLocal.GetValueOrDefault(false));
            return;
        }

        // The environment's proxy settings (or a proxy the host assigned to HttpClient.DefaultProxy).
        handler.UseProxy = true;
        handler.Proxy = HttpClient.DefaultProxy;
        if (ProxyAddress.FromEnvironment() is { } environment && Interlocked.Exchange(ref _environmentProxyLogged, 1) == 0)
        {
            Log.EnvironmentProxy(_logger, environment);
        }
    }

    private void ConfigureTrust(ForwarderHttpClientContext context, SocketsHttpHandler handler)
    {
        if (context.NewConfig.DangerousAcceptAnyServerCertificate == true)
        {
            // The cluster opted out of validation explicitly (YARP's setting): nothing to add, nothing to log.
            return;
        }

        var path = CaBundlePath(context.NewMetadata) ?? _options.Value.Upstream.CaBundlePath;
        X509Certificate2Collection? bundle = null;
        if (!string.IsNullOrEmpty(path))
        {
            bundle = UpstreamCertificateValidator.LoadBundle(path);
            Log.CaBundle(_logger, context.ClusterId, path, bundle.Count);
        }

        handler.SslOptions.RemoteCertificateValidationCallback = new UpstreamCertificateValidator(context.ClusterId, bundle, _logger).Validate;
    }

    private static string? CaBundlePath(IReadOnlyDictionary<string, string>? metadata)
        => metadata is not null && metadata.TryGetValue(CaBundleMetadataKey, out var path) && !string.IsNullOrEmpty(path) ? path : null;

    private static partial class Log
    {
        [LoggerMessage(1700, LogLevel.Information, "Cluster '{ClusterId}' reaches its upstreams through the proxy {Proxy} (bypass on local: {BypassOnLocal}).", EventName = "ClusterProxy")]
        public static partial void ClusterProxy(ILogger logger, string clusterId, string proxy, bool bypassOnLocal);

        [LoggerMessage(1701, LogLevel.Information, "Upstream requests use the proxy from the environment: {Settings}.", EventName = "EnvironmentProxy")]
        public static partial void EnvironmentProxy(ILogger logger, string settings);

        [LoggerMessage(1702, LogLevel.Information, "Cluster '{ClusterId}' trusts the {Count} certificate(s) of the CA bundle {Path} besides the system's roots.", EventName = "CaBundle")]
        public static partial void CaBundle(ILogger logger, string clusterId, string path, int count);
    }
}
