using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace MockInference;

/// <summary>
/// Deterministic reply texts. The pools are chosen to hit what breaks streaming clients: multi-token CJK
/// characters, emoji ZWJ sequences, flags, combining marks, non-BMP math letters.
/// </summary>
internal static class ReplyText
{
    private static readonly string[] s_english =
    [
        "The quick brown fox jumps over the lazy dog.",
        "Streaming tokens one by one makes a model feel fast.",
        "A relay must never buffer a response that the client is waiting for.",
        "Latency is measured from the first byte, not the last.",
        "Backpressure travels over TCP when the reader slows down.",
        "Every stream ends with a clear signal, never a silent cut.",
        "Numbers like 3.14159, 2,718 and 1e-9 tokenize in surprising ways.",
        "Code such as `for (var i = 0; i < n; i++) { sum += i; }` is common in replies.",
        "Quotes \"inside\" text and back\\slashes must be escaped in JSON.",
    ];

    private static readonly string[] s_unicode =
    [
        "人工智能正在改变我们的世界。",
        "東京は日本の首都です。今日はいい天気ですね。",
        "한국어 문장도 포함됩니다.",
        "A family emoji 👩‍👩‍👧‍👦 is one grapheme made of seven code points.",
        "Pride 🏳️‍🌈 and flags 🇯🇵 🇫🇷 🇧🇷 are sequences too.",
        "Faces 😀🙃🤖 and a thumbs up 👍🏽 with a skin tone.",
        "Cafe\u0301 and nai\u0308ve use combining marks.",
        "Tiếng Việt có nhiều dấu: Xin chào thế giới, cảm ơn bạn.",
        "Math: ∀x ∈ ℝ, x² ≥ 0 and ∑ᵢ 1/2ⁱ = 1, ∫₀¹ x dx = ½.",
        "Script letters 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 and 𝑥 + 𝑦 = 𝑧 live outside the BMP.",
        "مرحبا بالعالم و שלום עולם are written right to left.",
        "Emoji soup: 🎉🔥✨🚀🌍🍣🐉.",
    ];

    /// <summary>Sentences from a seed until the text has at least <paramref name="minTokens"/> tokens.</summary>
    public static string Generate(int seed, int minTokens, MockTokenizer tokenizer)
    {
        var random = new Random(seed);
        var builder = new StringBuilder();

        // Start with a multi-byte sentence so even short replies exercise token boundaries.
        builder.Append(s_unicode[random.Next(s_unicode.Length)]);
        var estimate = tokenizer.CountTokens(builder.ToString());
        while (true)
        {
            while (estimate < minTokens)
            {
                var pool = random.Next(3) == 0 ? s_english : s_unicode;
                var sentence = pool[random.Next(pool.Length)];
                builder.Append(random.Next(6) == 0 ? "\n\n" : " ");
                builder.Append(sentence);

                // Per-sentence counts add up to about the whole text's count (pre-tokenization splits at spaces).
                estimate += tokenizer.CountTokens(sentence) + 1;
            }

            var text = builder.ToString();
            var actual = tokenizer.CountTokens(text);
            if (actual >= minTokens)
            {
                return text;
            }

            estimate = actual;
        }
    }

    /// <summary>A deterministic JSON document: valid JSON once complete.</summary>
    public static string GenerateJson(int seed)
    {
        var random = new Random(seed);
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions
        {
            Indented = true,
            // Raw UTF-8 rather than \u escapes, so the document's characters span tokens like a model's would.
            Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        }))
        {
            writer.WriteStartObject();
            writer.WriteString("id", $"doc-{seed}");
            writer.WriteString("title", "Résumé of a trip to 東京 🗼");
            writer.WriteString("summary", s_unicode[random.Next(s_unicode.Length)]);
            writer.WriteNumber("count", random.Next(1, 1000));
            writer.WriteNumber("ratio", Math.Round(random.NextDouble() * 100, 4));
            writer.WriteNumber("delta", -random.Next(1, 100));
            writer.WriteBoolean("active", true);
            writer.WriteBoolean("archived", false);
            writer.WriteNull("owner");
            writer.WriteStartArray("tags");
            writer.WriteStringValue("naïve");
            writer.WriteStringValue("日本語");
            writer.WriteStringValue("family 👩‍👩‍👧‍👦");
            writer.WriteStringValue("quote \" and backslash \\");
            writer.WriteEndArray();
            writer.WriteStartArray("items");
            var items = random.Next(3, 6);
            for (var i = 0; i < items; i++)
            {
                writer.WriteStartObject();
                writer.WriteNumber("index", i);
                writer.WriteString("name", s_english[random.Next(s_english.Length)]);
                writer.WriteNumber("price", Math.Round(random.NextDouble() * 500, 2));
                writer.WriteBoolean("in_stock", random.Next(2) == 0);
                writer.WriteNull("notes");
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
