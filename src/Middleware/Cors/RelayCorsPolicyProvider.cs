using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Cors.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;
using Relay.Middleware.Configuration;
using Yarp.ReverseProxy.Model;

namespace Relay.Middleware.Cors;

/// <summary>
/// ASP.NET Core's CORS middleware, with policies from Relay's per-route settings (<c>Relay:Cors:AllowedOrigins</c>,
/// route metadata <c>Relay.Cors.AllowedOrigins.0</c>, ...): a route without allowed origins gets no CORS headers
/// (browsers then refuse cross-origin reads). Named policies (a YARP route's own <c>CorsPolicy</c>) work as usual.
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
        return Task.FromResult(cors.AllowedOrigins.Length == 0 ? null : _policies.GetValue(cors, Build));
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
            builder.WithOrigins(options.AllowedOrigins);
        }

        return builder.Build();
    }
}
