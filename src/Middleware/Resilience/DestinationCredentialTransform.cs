using System.Net.Http.Headers;
using Microsoft.Extensions.Configuration;
using Microsoft.Net.Http.Headers;
using Relay.Middleware.Configuration;
using Relay.Middleware.Requests;
using Yarp.ReverseProxy.Model;
using Yarp.ReverseProxy.Transforms;

namespace Relay.Middleware.Resilience;

/// <summary>
/// Per-destination credentials, for a cluster whose destinations are different services (an OpenAI primary and an
/// Azure OpenAI secondary): YARP's transforms belong to the route, but failover changes the destination per attempt.
/// Two destination metadata entries:
/// <list type="bullet">
/// <item><c>Relay.ApiKeyHeader</c>: the header that carries the credential at this destination (Azure OpenAI:
/// <c>api-key</c>); the bearer token otherwise sent as <c>Authorization</c> goes there instead.</item>
/// <item><c>Relay.ApiKeyConfigKey</c>: the configuration key (environment variable, secret store) holding this
/// destination's own key, used on routes in <c>RelayKeys</c> mode instead of <c>Auth:UpstreamApiKey</c>; the key
/// itself never sits in the proxy configuration.</item>
/// </list>
/// </summary>
internal sealed class DestinationCredentialTransform : RequestTransform
{
    /// <summary>Destination metadata: the header the credential goes in.</summary>
    public const string ApiKeyHeaderMetadata = "Relay.ApiKeyHeader";

    /// <summary>Destination metadata: the configuration key of the destination's own key.</summary>
    public const string ApiKeyConfigKeyMetadata = "Relay.ApiKeyConfigKey";

    private readonly IConfiguration _configuration;

    public DestinationCredentialTransform(IConfiguration configuration) => _configuration = configuration;

    public override ValueTask ApplyAsync(RequestTransformContext context)
    {
        var metadata = context.HttpContext.Features.Get<IReverseProxyFeature>()?.ProxiedDestination?.Model.Config.Metadata;
        if (metadata is null || !(metadata.ContainsKey(ApiKeyHeaderMetadata) || metadata.ContainsKey(ApiKeyConfigKeyMetadata)))
        {
            return ValueTask.CompletedTask;
        }

        var headers = context.ProxyRequest.Headers;
        var credential = headers.Authorization is { Scheme: var scheme, Parameter: var token } && scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase) ? token : null;
        var route = context.HttpContext.Features.Get<RelayRequestFeature>()?.Route;
        if (route?.Auth.Mode == RelayAuthMode.RelayKeys && metadata.TryGetValue(ApiKeyConfigKeyMetadata, out var configKey)
            && _configuration[configKey] is { Length: > 0 } own)
        {
            credential = own;
        }

        if (credential is null)
        {
            return ValueTask.CompletedTask;
        }

        headers.Authorization = null;
        if (metadata.TryGetValue(ApiKeyHeaderMetadata, out var header) && header.Length > 0
            && !string.Equals(header, HeaderNames.Authorization, StringComparison.OrdinalIgnoreCase))
        {
            headers.Remove(header);
            headers.TryAddWithoutValidation(header, credential);
        }
        else
        {
            headers.Authorization = new AuthenticationHeaderValue("Bearer", credential);
        }

        return ValueTask.CompletedTask;
    }
}
