using Microsoft.Extensions.Options;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests.State;

/// <summary><c>Resume:MaxResponseSeconds</c> is checked at start-up, in the <c>Relay</c> section and in a route's metadata.</summary>
public sealed class ResponseCapConfigurationTests(MockUpstreamFixture upstream) : IClassFixture<MockUpstreamFixture>
{
    private Dictionary<string, string?> Route(string value) => new()
    {
        ["ReverseProxy:Routes:chat:ClusterId"] = "mock",
        ["ReverseProxy:Routes:chat:Match:Path"] = "/v1/{**rest}",
        ["ReverseProxy:Routes:chat:Metadata:Relay.Resume.MaxResponseSeconds"] = value,
        ["ReverseProxy:Clusters:mock:Destinations:one:Address"] = upstream.Url,
    };

    [Theory]
    [InlineData("0.5")]
    [InlineData("-1")]
    public async Task RouteMaxResponseSeconds_BelowOneSecond_FailsAtStartUp_NamingTheRoute(string value)
    {
        var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => PackageApp.StartAsync(Route(value)));
        var message = Assert.Single(((AggregateException)failure.InnerException!).InnerExceptions).Message;
        Assert.StartsWith("Route 'chat': Relay.Resume.MaxResponseSeconds must be zero (off) or at least 1", message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("25")]
    [InlineData("0")]
    public async Task Control_RouteMaxResponseSeconds_OffOrAtLeastOneSecond_Starts(string value)
    {
        await using var app = await PackageApp.StartAsync(Route(value));
    }

    [Fact]
    public async Task MaxResponseSecondsInTheRelaySection_WithoutADetachedTime_FailsAtStartUp()
    {
        var failure = await Assert.ThrowsAsync<OptionsValidationException>(() => PackageApp.StartAsync(new Dictionary<string, string?>
        {
            ["Relay:Upstream:BaseUrl"] = upstream.Url,
            ["Relay:Resume:MaxResponseSeconds"] = "25",
            ["Relay:Resume:DetachedSeconds"] = "0",
        }));
        Assert.StartsWith("Relay:Resume:MaxResponseSeconds needs Relay:Resume:DetachedSeconds of at least 1", Assert.Single(failure.Failures), StringComparison.Ordinal);
    }
}
