using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace Relay.Middleware.Tests.Support;

/// <summary>What a client reads from the relayed events: the joined <c>delta.content</c> of a choice, checked for damage.</summary>
internal static class ClientContent
{
    /// <summary>Joins the content of <paramref name="choice"/>; asserts every event is valid UTF-8, has no lone surrogate and no U+FFFD.</summary>
    public static string Join(IEnumerable<byte[]> events, int choice = 0, bool upstreamHasReplacement = false)
    {
        var text = new StringBuilder();
        foreach (var data in events)
        {
            Assert.True(Utf8.IsValid(data), "an event holds invalid UTF-8");
            if (data.AsSpan().SequenceEqual("[DONE]"u8) || data.Length == 0 || data[0] != (byte)'{')
            {
                continue;
            }

            var piece = ContentOf(data, choice);
            if (piece is null)
            {
                continue;
            }

            // GetString above throws on a lone surrogate escape; U+FFFD means a character was broken.
            if (!upstreamHasReplacement)
            {
                Assert.DoesNotContain('\uFFFD', piece);
            }

            text.Append(piece);
        }

        return text.ToString();
    }

    public static string? ContentOf(byte[] data, int choice = 0)
    {
        using var doc = JsonDocument.Parse(data);
        if (!doc.RootElement.TryGetProperty("choices", out var choices))
        {
            return null;
        }

        foreach (var c in choices.EnumerateArray())
        {
            if (c.GetProperty("index").GetInt32() == choice && c.TryGetProperty("delta", out var delta)
                && delta.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String)
            {
                return content.GetString();
            }
        }

        return null;
    }
}
