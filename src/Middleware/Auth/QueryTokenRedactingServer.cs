using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using Relay.Middleware.Configuration;

namespace Relay.Middleware.Auth;

/// <summary>
/// Takes query-string credentials out of every request's URL as the server hands the request over, before the
/// host's "Request starting" log, HTTP logging or any middleware sees the URL: no logged URL ever carries a token.
/// The tokens travel on in a <see cref="QueryCredentialFeature"/> for <see cref="RelayAuthenticator"/>.
/// </summary>
/// <remarks>
/// A decorator of <see cref="IServer"/> because the host logs the request line before the first middleware runs.
/// Registered by <c>AddRelay</c> when the server (Kestrel) is already registered, as it is with
/// <c>WebApplication.CreateBuilder</c>.
/// </remarks>
internal sealed class QueryTokenRedactingServer(IServer inner, IOptionsMonitor<RelayOptions> options) : IServer
{
    public IFeatureCollection Features => inner.Features;

    public Task StartAsync<TContext>(IHttpApplication<TContext> application, CancellationToken cancellationToken)
        where TContext : notnull
        => inner.StartAsync(new RedactingApplication<TContext>(application, options), cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => inner.StopAsync(cancellationToken);

    public void Dispose() => inner.Dispose();

    private sealed class RedactingApplication<TContext>(IHttpApplication<TContext> inner, IOptionsMonitor<RelayOptions> options) : IHttpApplication<TContext>
        where TContext : notnull
    {
        public TContext CreateContext(IFeatureCollection contextFeatures)
        {
            if (contextFeatures.Get<IHttpRequestFeature>() is { QueryString.Length: > 1 } request)
            {
                var found = new List<KeyValuePair<string, string>>();
                var stripped = QueryTokens.Strip(request.QueryString, options.CurrentValue.Auth.QueryTokenAlias, found);
                if (found.Count > 0)
                {
                    request.QueryString = stripped;
                    // The raw request target carries the query too (Kestrel's own debug logs, diagnostics listeners).
                    var query = request.RawTarget.IndexOf('?');
                    if (query >= 0)
                    {
                        request.RawTarget = request.RawTarget[..query] + stripped;
                    }

                    contextFeatures.Set(new QueryCredentialFeature(found));
                }
            }

            return inner.CreateContext(contextFeatures);
        }

        public Task ProcessRequestAsync(TContext context) => inner.ProcessRequestAsync(context);

        public void DisposeContext(TContext context, Exception? exception) => inner.DisposeContext(context, exception);
    }
}
