using System.Net.WebSockets;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests.WebSockets;

/// <summary>
/// Issues 5 and 6 together: the bridge accepts the same credentials as the SSE path (Authorization header, the
/// <c>access_token</c> query token, a token offered as a subprotocol), authenticates the handshake before the socket
/// is accepted, and every response of the session reaches the upstream with the route's upstream key only.
/// </summary>
public sealed class WebSocketAuthTests(MockUpstreamFixture upstream) : RelayTestBase(upstream, AuthTests.RelayKeySettings())
{
    public static TheoryData<string> Sources() => ["header", "query", "subprotocol"];

    [Theory]
    [MemberData(nameof(Sources))]
    public async Task RelayKey_FromEachSource_OpensTheSession_AndEveryResponseCarriesTheUpstreamKey(string source)
    {
        var headers = WebSocketBridgeTests.Fast(5);
        var path = "/v1/chat/ws";
        string[] protocols = [];
        switch (source)
        {
            case "header":
                headers["Authorization"] = "Bearer " + AuthTests.ClientKey;
                break;
            case "query":
                path += "?access_token=" + AuthTests.ClientKey;
                break;
            default:
                protocols = ["relay.v1", "openai-insecure-api-key." + AuthTests.ClientKey];
                break;
        }

        await using var client = await BridgeClient.ConnectAsync(Relay.Url, headers, path, protocols);
        Assert.Equal("session.created", (await client.ReceiveAsync())!.Type);
        for (var i = 0; i < 2; i++)
        {
            await client.SendAsync(BridgeClient.Create());
            var done = (await client.ReceiveUntilAsync("response.done"))[^1].Json.GetProperty("response");
            Assert.Equal("completed", done.GetProperty("status").GetString());
            var record = await Upstream.RecordAsync(done.GetProperty("upstream").GetProperty("request_id").GetString()!);
            Assert.Equal("Bearer " + AuthTests.UpstreamKey, record.GetProperty("authorization").GetString());
            Assert.DoesNotContain(AuthTests.ClientKey, record.GetProperty("query").ToString(), StringComparison.Ordinal);
        }

        if (source == "subprotocol")
        {
            Assert.Equal("relay.v1", client.Socket.SubProtocol);
        }

        AssertNotLogged(AuthTests.ClientKey, AuthTests.UpstreamKey);
    }

    [Theory]
    [InlineData("rk-not-a-key", 401)]
    [InlineData(null, 401)]
    public async Task UnknownOrMissingKey_HandshakeRefused_NoSocket(string? key, int status)
    {
        var headers = WebSocketBridgeTests.Fast(5);
        if (key is not null)
        {
            headers["Authorization"] = "Bearer " + key;
        }

        var error = await Assert.ThrowsAsync<WebSocketException>(() => BridgeClient.ConnectAsync(Relay.Url, headers));
        Assert.Contains(status.ToString(System.Globalization.CultureInfo.InvariantCulture), error.Message, StringComparison.Ordinal);
    }

    private void AssertNotLogged(params string[] secrets)
    {
        foreach (var entry in Relay.Logs.GetSnapshot())
        {
            foreach (var secret in secrets)
            {
                Assert.DoesNotContain(secret, entry.Message + entry.Exception, StringComparison.Ordinal);
            }
        }
    }
}
