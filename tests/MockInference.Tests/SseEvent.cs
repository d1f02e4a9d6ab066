using System.Text;
using System.Text.Json;

namespace MockInference.Tests;

/// <summary>One received SSE event: the raw bytes after "data: " and when the client got them.</summary>
public sealed record SseEvent(byte[] Data, long ReceivedUs)
{
    public bool IsDone => Data.AsSpan().SequenceEqual("[DONE]"u8);

    public JsonElement Json => JsonDocument.Parse(Data).RootElement;

    public string Text => Encoding.UTF8.GetString(Data);
}
