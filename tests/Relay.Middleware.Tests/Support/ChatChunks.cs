using System.Text;
using System.Text.Json;

namespace Relay.Middleware.Tests.Support;

/// <summary>Builds upstream <c>chat.completion.chunk</c> events for tests.</summary>
internal static class ChatChunks
{
    public const string Envelope = "\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\"";

    public static string Content(string text, int index = 0) => Event(
        $"{{{Envelope},\"choices\":[{{\"index\":{index},\"delta\":{{\"content\":{JsonSerializer.Serialize(text)}}},\"logprobs\":null,\"finish_reason\":null}}]}}");

    /// <summary>A content event whose JSON string holds <paramref name="rawStringContent"/> byte for byte (raw, unvalidated).</summary>
    public static byte[] RawContent(ReadOnlySpan<byte> rawStringContent, int index = 0)
    {
        var prefix = Encoding.UTF8.GetBytes($"data: {{{Envelope},\"choices\":[{{\"index\":{index},\"delta\":{{\"content\":\"");
        var suffix = "\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n"u8;
        return [.. prefix, .. rawStringContent, .. suffix];
    }

    public static string Role(int index = 0) => Event(
        $"{{{Envelope},\"choices\":[{{\"index\":{index},\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},\"finish_reason\":null}}]}}");

    public static string Finish(string reason = "stop", int index = 0) => Event(
        $"{{{Envelope},\"choices\":[{{\"index\":{index},\"delta\":{{}},\"finish_reason\":\"{reason}\"}}]}}");

    public static string Usage() => Event(
        $"{{{Envelope},\"choices\":[],\"usage\":{{\"prompt_tokens\":7,\"completion_tokens\":9,\"total_tokens\":16}}}}");

    public static string ToolStart(string id, string name, int tool = 0) => Event(
        $"{{{Envelope},\"choices\":[{{\"index\":0,\"delta\":{{\"tool_calls\":[{{\"index\":{tool},\"id\":\"{id}\",\"type\":\"function\",\"function\":{{\"name\":\"{name}\",\"arguments\":\"\"}}}}]}},\"finish_reason\":null}}]}}");

    public static string ToolArgs(string fragment, int tool = 0) => Event(
        $"{{{Envelope},\"choices\":[{{\"index\":0,\"delta\":{{\"tool_calls\":[{{\"index\":{tool},\"function\":{{\"arguments\":{JsonSerializer.Serialize(fragment)}}}}}]}},\"finish_reason\":null}}]}}");

    public static string Refusal(string text, int index = 0) => Event(
        $"{{{Envelope},\"choices\":[{{\"index\":{index},\"delta\":{{\"refusal\":{JsonSerializer.Serialize(text)}}},\"logprobs\":null,\"finish_reason\":null}}]}}");

    /// <summary>A content (or refusal) token with its <c>logprobs</c> token list, as OpenAI sends with <c>logprobs: true</c>.</summary>
    public static string WithLogprobs(string text, double logprob, string field = "content", int index = 0)
    {
        var token = JsonSerializer.Serialize(text);
        var bytes = string.Join(',', Encoding.UTF8.GetBytes(text));
        var entry = $"[{{\"token\":{token},\"logprob\":{logprob.ToString(System.Globalization.CultureInfo.InvariantCulture)},\"bytes\":[{bytes}],\"top_logprobs\":[]}}]";
        var lists = field == "content" ? $"\"content\":{entry},\"refusal\":null" : $"\"content\":null,\"refusal\":{entry}";
        return Event($"{{{Envelope},\"choices\":[{{\"index\":{index},\"delta\":{{\"{field}\":{token}}},\"logprobs\":{{{lists}}},\"finish_reason\":null}}]}}");
    }

    public const string Done = "data: [DONE]\n\n";

    public static string Event(string json) => $"data: {json}\n\n";
}
