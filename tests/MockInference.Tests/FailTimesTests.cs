using System.Net;
using System.Text.Json;

namespace MockInference.Tests;

/// <summary><c>x-mock-fail-times</c> with <c>x-mock-fail-key</c>: the first N requests with a key fail, later ones succeed.</summary>
public sealed class FailTimesTests(MockServerFixture server) : IClassFixture<MockServerFixture>
{
    [Fact]
    public async Task FirstTwoRequestsWithTheKeyFail_TheThirdSucceeds_AndTheCountSaysThree()
    {
        var key = Guid.NewGuid().ToString("N");
        var knobs = new Dictionary<string, string>
        {
            ["x-mock-status"] = "503",
            ["x-mock-fail-times"] = "2",
            ["x-mock-fail-key"] = key,
            ["x-mock-ttft-ms"] = "0",
            ["x-mock-max-tokens"] = "3",
        };
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 3; i++)
        {
            using var response = await server.Client.SendAsync(MockApi.Chat(knobs: knobs));
            statuses.Add(response.StatusCode);
        }

        Assert.Equal([HttpStatusCode.ServiceUnavailable, HttpStatusCode.ServiceUnavailable, HttpStatusCode.OK], statuses);
        var count = JsonDocument.Parse(await server.Client.GetStringAsync($"/mock/fail-keys/{key}")).RootElement.GetProperty("requests").GetInt32();
        Assert.Equal(3, count);
    }

    [Fact]
    public async Task WithoutFailTimes_EveryRequestWithTheKeyFails()
    {
        var key = Guid.NewGuid().ToString("N");
        var knobs = new Dictionary<string, string> { ["x-mock-status"] = "429", ["x-mock-fail-key"] = key };
        for (var i = 0; i < 2; i++)
        {
            using var response = await server.Client.SendAsync(MockApi.Chat(knobs: knobs));
            Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        }
    }
}
