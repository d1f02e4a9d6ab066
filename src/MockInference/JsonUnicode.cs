using System.Text.Json;

namespace MockInference;

/// <summary>
/// Whether every string of a JSON text, names included, is Unicode text once unescaped. RFC 8259, section 8.2:
/// "the ABNF in this specification allows member names and string values to contain bit sequences that cannot
/// encode Unicode characters; for example, "\uDEAD" (a single unpaired UTF-16 surrogate)". JavaScript's
/// <c>JSON.stringify</c> writes exactly that for half an emoji. <see cref="JsonDocument"/> accepts it and then
/// throws when the string is read, so the mock checks the whole body once, as strict servers do (Anthropic's API:
/// 400 invalid_request_error "The request body is not valid JSON: no low surrogate in string"; DeepSeek's: 400
/// "lone leading surrogate in hex escape").
/// </summary>
internal static class JsonUnicode
{
    /// <summary>False when a string or property name of <paramref name="json"/> (already parsed once) holds an unpaired surrogate escape.</summary>
    public static bool AllStringsAreText(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json);
        while (reader.Read())
        {
            // Raw UTF-8 was validated by the parse; only an escape can make a string that is not text.
            if (reader.TokenType is JsonTokenType.String or JsonTokenType.PropertyName && reader.ValueIsEscaped)
            {
                try
                {
                    reader.GetString();
                }
                catch (InvalidOperationException)
                {
                    return false;
                }
            }
        }

        return true;
    }
}
