using Microsoft.AspNetCore.Builder;

namespace Relay.Middleware.Hosting;

/// <summary>The conventions of an endpoint that was not mapped (a feature switched off): they apply to nothing.</summary>
internal sealed class NoEndpoint : IEndpointConventionBuilder
{
    public static readonly NoEndpoint Instance = new();

    public void Add(Action<EndpointBuilder> convention)
    {
    }
}
