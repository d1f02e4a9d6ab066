using Relay.Tests.Shared;

namespace MockInference.Tests;

/// <summary>Reads the mock's event streams (<see cref="SseTestReader"/>); the mock writes events only, never comments.</summary>
public static class SseReader
{
    public static async Task<List<SseEvent>> ReadAllAsync(
        HttpResponseMessage response, int? stopAfterEvents = null, CancellationToken cancellationToken = default)
    {
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        var count = 0;
        var received = await SseTestReader.ReadAllAsync(stream, _ => ++count == stopAfterEvents, cancellationToken);
        Assert.All(received, static r => Assert.Null(r.Comment));
        return received.ConvertAll(static r => new SseEvent(r.Data, r.ReceivedUs));
    }
}
