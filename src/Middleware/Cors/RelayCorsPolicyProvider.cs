using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Cors.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;
using Relay.Middleware.Configuration;
using Yarp.ReverseProxy.Model;

namespace Relay.Middleware.Cors;

/// <summary>
/// ASP.NET Core's CORS middleware, with policies from Relay's per-route settings (<c>Relay:Cors:AllowedOrigins</c>,
/// route metadata <c>Relay.Cors.AllowedOrigins.0</c>, ...). Relay owns CORS on every route: a route without allowed
/// origins gets a policy that allows no origin, so its preflights are answered here (204, no CORS headers: browsers
/// then refuse the cross-origin call) and never reach the upstream. Only a route with <c>Cors:PassUpstreamHeaders</c>
/// gets no policy: there the upstream answers preflights and its CORS headers pass. Named policies (a YARP route's
/// own <c>CorsPolicy</c>) work as usual.
/// </summary>
internal sealed class RelayCorsPolicyProvider : ICorsPolicyProvider
{
    private readonly DefaultCorsPolicyProvider _named;
    private readonly RouteSettingsResolver _settings;
    private readonly ConditionalWeakTable<CrossOriginOptions, CorsPolicy> _policies = new();

    public RelayCorsPolicyProvider(IOptions<CorsOptions> options, RouteSettingsResolver settings)
    {
        _named = new DefaultCorsPolicyProvider(options);
        _settings = settings;
    }

    public Task<CorsPolicy?> GetPolicyAsync(HttpContext context, string? policyName)
    {
        var route = context.GetEndpoint()?.Metadata.GetMetadata<RouteModel>()?.Config;
        if (policyName is not null || route is null)
        {
            return _named.GetPolicyAsync(context, policyName);
        }

        var cors = _settings.Get(route).Cors;
        return Task.FromResult(cors.PassUpstreamHeaders ? null : _policies.GetValue(cors, Build));
    }

    private static CorsPolicy Build(CrossOriginOptions options)
    {
        var builder = new CorsPolicyBuilder().AllowAnyHeader().AllowAnyMethod()
            .SetPreflightMaxAge(TimeSpan.FromSeconds(options.PreflightMaxAgeSeconds));
        if (options.AllowedOrigins.Contains("*"))
        {
            builder.AllowAnyOrigin();
        }
        else
        {
            // No origins (CORS off): every origin is refused, preflights included.
            builder.WithOrigins(options.AllowedOrigins);
        }

        return builder.Build();
    }
}
