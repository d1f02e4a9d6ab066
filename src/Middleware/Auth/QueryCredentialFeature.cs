namespace Relay.Middleware.Auth;

/// <summary>
/// Query-string credentials taken out of a request's URL before anything logged it (see
/// <see cref="QueryTokenRedactingServer"/>). On a route that does not accept query tokens they are put back into
/// the upstream URL only (<see cref="RestoreOnUnacceptingRoute"/>), never into the request's own URL, which the
/// host logs when the request finishes.
/// </summary>
internal sealed class QueryCredentialFeature(List<KeyValuePair<string, string>> tokens)
{
    public List<KeyValuePair<string, string>> Tokens { get; } = tokens;

    /// <summary>Set when the route does not accept query tokens: Relay does not interpret the parameters there.</summary>
    public bool ForwardUnchanged { get; set; }

    /// <summary>A YARP request transform: the parameters go upstream as the client sent them.</summary>
    public static ValueTask RestoreOnUnacceptingRoute(Yarp.ReverseProxy.Transforms.RequestTransformContext context)
    {
        if (context.HttpContext.Features.Get<QueryCredentialFeature>() is { ForwardUnchanged: true } feature)
        {
            foreach (var (name, value) in feature.Tokens)
            {
                var query = context.Query.Collection;
                query[name] = query.TryGetValue(name, out var existing) ? Microsoft.Extensions.Primitives.StringValues.Concat(existing, value) : value;
            }
        }

        return ValueTask.CompletedTask;
    }
}
