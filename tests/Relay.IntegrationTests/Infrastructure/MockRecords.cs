using System.Text.Json;

namespace Relay.IntegrationTests.Infrastructure;

/// <summary>The simulated upstream's request records (<c>GET /mock/requests/{id}</c>), wherever it runs.</summary>
public static class MockRecords
{
    /// <summary>
    /// Polls the record of one request until <paramref name="until"/> holds (a bounded poll of observed state,
    /// not a sleep that synchronises behaviour); fails with the last record after <paramref name="timeout"/>.
    /// </summary>
    public static async Task<JsonElement> WaitAsync(HttpClient client, string upstreamUrl, string requestId, Func<JsonElement, bool> until, TimeSpan? timeout = null, TimeSpan? poll = null)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var limit = timeout ?? Deadline.Default;
        while (true)
        {
            var record = JsonDocument.Parse(await client.GetStringAsync($"{upstreamUrl}/mock/requests/{requestId}")).RootElement;
            if (until(record))
            {
                return record;
            }

            if (clock.Elapsed > limit)
            {
                throw new TimeoutException($"the upstream record of {requestId} did not reach the expected state in {limit}: {record}");
            }

            await Task.Delay(poll ?? TimeSpan.FromMilliseconds(10));
        }
    }
}
