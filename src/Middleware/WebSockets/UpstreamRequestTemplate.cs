using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.Features.Authentication;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;
using Relay.Middleware.Requests;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;

namespace Relay.Middleware.WebSockets;

/// <summary>
/// Makes, for each response a WebSocket session starts, the <see cref="HttpContext"/> of an ordinary
/// <c>POST .../chat/completions</c> that goes down the same path as an SSE request (docs/design.md: "one upstream path"):
/// Relay's own step (body inspection, timeouts, lifetime, accounting), then YARP's session affinity, load
/// balancing, health checks, forwarder, route transforms and cluster <c>HttpMessageInvoker</c>. The request carries
/// the upgrade request's headers (auth included) without the WebSocket handshake's, and the features of the
/// upgrade request (connection, user, services) except those bound to its own request and response.
/// </summary>
/// <remarks>
/// Why a synthetic request through YARP's pipeline rather than calling <see cref="IHttpForwarder"/> directly: the
/// pipeline after Relay's step is the route's own (destination selection, affinity, passive health), so a
/// bridged response is forwarded by exactly what forwards an SSE request, including what a host adds to it.
/// </remarks>
internal sealed class UpstreamRequestTemplate
{
    // Features bound to the upgrade request's own request, response or transport: each bridged request has its own.
    private static readonly HashSet<Type> NotInherited =
    [
        typeof(IHttpRequestFeature), typeof(IHttpResponseFeature), typeof(IHttpResponseBodyFeature),
        typeof(IHttpRequestLifetimeFeature), typeof(IHttpUpgradeFeature), typeof(IHttpExtendedConnectFeature),
        typeof(IHttpWebSocketFeature), typeof(IHttpRequestBodyDetectionFeature), typeof(IHttpMaxRequestBodySizeFeature),
        typeof(IHttpResponseTrailersFeature), typeof(IHttpRequestTrailersFeature), typeof(IHttpResetFeature),
        typeof(IRequestBodyPipeFeature), typeof(IHttpBodyControlFeature), typeof(IHttpMinRequestBodyDataRateFeature),
        typeof(IHttpMinResponseDataRateFeature), typeof(IHttp2StreamIdFeature), typeof(IQueryFeature), typeof(IFormFeature),
        typeof(IRequestCookiesFeature), typeof(IResponseCookiesFeature), typeof(IItemsFeature), typeof(IRouteValuesFeature),
        typeof(IEndpointFeature), typeof(IReverseProxyFeature), typeof(IForwarderErrorFeature), typeof(RelayRequestFeature),
        typeof(IServiceProvidersFeature),
    ];

    // The handshake's own headers, and those describing the upgrade request's (empty) body.
    private static readonly string[] NotForwarded =
    [
        HeaderNames.Connection, HeaderNames.Upgrade, HeaderNames.SecWebSocketKey, HeaderNames.SecWebSocketVersion,
        HeaderNames.SecWebSocketProtocol, HeaderNames.SecWebSocketExtensions, HeaderNames.SecWebSocketAccept,
        HeaderNames.ContentLength, HeaderNames.ContentType, HeaderNames.TransferEncoding, HeaderNames.AcceptEncoding,
    ];

    private readonly HttpContext _upgrade;
    private readonly KeyValuePair<string, StringValues>[] _headers;
    private readonly PathString _path;
    private readonly QueryString _query;
    private readonly RouteValueDictionary _routeValues;

    private UpstreamRequestTemplate(HttpContext upgrade)
    {
        _upgrade = upgrade;
        _headers = upgrade.Request.Headers
            .Where(static h => !NotForwarded.Contains(h.Key, StringComparer.OrdinalIgnoreCase) && !h.Key.StartsWith(':'))
            .ToArray();
        _path = ChatCompletionsPath(upgrade.Request.Path);
        _query = WithoutAccessToken(upgrade.Request.QueryString);
        _routeValues = new RouteValueDictionary();
        foreach (var (key, value) in upgrade.Request.RouteValues)
        {
            // A catch-all route value holds the path: it must name the chat completions endpoint too.
            _routeValues[key] = value is string s && (s.Equals("chat/ws", StringComparison.OrdinalIgnoreCase)
                || s.EndsWith("/chat/ws", StringComparison.OrdinalIgnoreCase))
                ? s[..^2] + "completions"
                : value;
        }
    }

    /// <summary>Snapshots the upgrade request (after authentication has run on it).</summary>
    public static UpstreamRequestTemplate From(HttpContext upgrade) => new(upgrade);

    /// <summary>The path of the chat completions endpoint that <paramref name="path"/> (…/chat/ws or …/chat/completions) stands for.</summary>
    internal static PathString ChatCompletionsPath(PathString path)
        => path.Value is { } p && p.EndsWith("/chat/ws", StringComparison.OrdinalIgnoreCase)
            ? new PathString(p[..^2] + "completions")
            : path;

    /// <summary>A new request carrying <paramref name="body"/>, answered into <paramref name="response"/>.</summary>
    public HttpContext Create(byte[] body, BridgedRequestLifetime lifetime, BridgedResponseFeature response)
    {
        var features = new FeatureCollection();
        foreach (var (type, instance) in _upgrade.Features)
        {
            if (!NotInherited.Contains(type))
            {
                features[type] = instance;
            }
        }

        var headers = new HeaderDictionary();
        foreach (var (key, value) in _headers)
        {
            headers[key] = value;
        }

        headers[HeaderNames.ContentType] = "application/json";
        headers.ContentLength = body.Length;
        var request = _upgrade.Request;
        features.Set<IHttpRequestFeature>(new HttpRequestFeature
        {
            Protocol = HttpProtocol.Http11,
            Scheme = request.Scheme,
            Method = HttpMethods.Post,
            PathBase = request.PathBase.Value ?? "",
            Path = _path.Value ?? "",
            QueryString = _query.Value ?? "",
            RawTarget = request.PathBase.Add(_path).Value + _query.Value,
            Headers = headers,
            Body = new MemoryStream(body, writable: false),
        });
        features.Set<IHttpResponseFeature>(response);
        features.Set<IHttpResponseBodyFeature>(response);
        features.Set<IHttpRequestLifetimeFeature>(lifetime);
        features.Set<IHttpRequestBodyDetectionFeature>(lifetime);
        features.Set<IHttpAuthenticationFeature>(new HttpAuthenticationFeature { User = _upgrade.User });

        var context = new DefaultHttpContext(features)
        {
            RequestServices = _upgrade.RequestServices,
            Items = new Dictionary<object, object?>(_upgrade.Items),
        };
        context.SetEndpoint(_upgrade.GetEndpoint());
        context.Request.RouteValues = new RouteValueDictionary(_routeValues);
        if (_upgrade.Features.Get<IReverseProxyFeature>() is { } proxy)
        {
            // As YARP's pipeline initialiser does for every request: the cluster's destinations as they are now.
            var destinations = proxy.Route.Cluster?.DestinationsState;
            context.Features.Set<IReverseProxyFeature>(new ReverseProxyFeature
            {
                Route = proxy.Route,
                Cluster = proxy.Route.Cluster?.Model ?? proxy.Cluster,
                AllDestinations = destinations?.AllDestinations ?? proxy.AllDestinations,
                AvailableDestinations = destinations?.AvailableDestinations ?? proxy.AllDestinations,
            });
        }

        return context;
    }

    /// <summary>
    /// Never forwards a query-string token: browsers that cannot set headers may put one there (RFC 6750 section 2.3),
    /// and a secret must not reach an upstream URL.
    /// </summary>
    private static QueryString WithoutAccessToken(QueryString query)
    {
        if (!query.HasValue || !query.Value!.Contains("access_token", StringComparison.OrdinalIgnoreCase))
        {
            return query;
        }

        var kept = QueryHelpers.ParseQuery(query.Value)
            .Where(static q => !string.Equals(q.Key, "access_token", StringComparison.OrdinalIgnoreCase))
            .SelectMany(static q => q.Value.Select(v => KeyValuePair.Create(q.Key, (string?)v)));
        return QueryString.Create(kept);
    }
}
