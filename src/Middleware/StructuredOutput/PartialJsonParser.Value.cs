using System.Buffers.Text;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Relay.Middleware.StructuredOutput;

/// <content>The partial value: the tree of completed values and the unfinished tail shown at its end.</content>
public sealed partial class PartialJsonParser
{
    private void Attach(JsonNode? node)
    {
        if (_depth == 0)
        {
            _root = node;
            _hasRoot = true;
            return;
        }

        var parent = _frames[_depth - 1].Container;
        if (parent is JsonObject obj)
        {
            // Duplicate keys: the last wins, as in JSON.parse.
            obj[_key!] = node;
            _key = null;
        }
        else
        {
            ((JsonArray)parent).Add(node);
        }
    }

    /// <summary>The value of the unfinished string, number or literal at the end of the text, if it has one yet.</summary>
    private bool TryCreateTail(out JsonNode? tail)
    {
        tail = null;
        switch (_token)
        {
            case Token.String or Token.StringEscape or Token.StringUnicode when !_stringIsKey:
                tail = JsonValue.Create(Encoding.UTF8.GetString(_text, 0, CompleteUtf8Length(_text.AsSpan(0, _textLength))));
                return true;
            case Token.True:
                tail = CreateLiteral(JsonValueKind.True);
                return true;
            case Token.False:
                tail = CreateLiteral(JsonValueKind.False);
                return true;
            case Token.Null:
                return true;
            case Token.Zero or Token.Integer or Token.Fraction or Token.ExponentDigits:
                tail = CreateNumber(_text.AsSpan(0, _textLength));
                return true;
            case Token.Dot or Token.Exponent:
                tail = CreateNumber(_text.AsSpan(0, _textLength - 1));
                return true;
            case Token.ExponentSign:
                tail = CreateNumber(_text.AsSpan(0, _textLength - 2));
                return true;
            default:
                return false;
        }
    }

    private void ShowValue(JsonNode? tail)
    {
        var parent = _frames[_depth - 1].Container;
        if (parent is JsonObject obj)
        {
            if (_key is null)
            {
                return;
            }

            // A duplicate key shows its newer value, as JSON.parse would; the older one is put back when hidden.
            if (obj.TryGetPropertyValue(_key, out var earlier))
            {
                _shownReplaced = earlier;
                _shownReplacing = true;
            }

            obj[_key] = tail;
            _shownKey = _key;
        }
        else
        {
            ((JsonArray)parent).Add(tail);
        }

        _shownIn = parent;
    }

    private void HideShownValue()
    {
        if (_shownIn is JsonObject obj)
        {
            if (_shownReplacing)
            {
                obj[_shownKey!] = _shownReplaced;
            }
            else
            {
                obj.Remove(_shownKey!);
            }
        }
        else if (_shownIn is JsonArray array)
        {
            array.RemoveAt(array.Count - 1);
        }

        _shownIn = null;
        _shownKey = null;
        _shownReplaced = null;
        _shownReplacing = false;
    }

    /// <summary>The length of <paramref name="utf8"/> without an incomplete UTF-8 sequence at its end.</summary>
    private static int CompleteUtf8Length(ReadOnlySpan<byte> utf8)
    {
        for (var back = 1; back <= Math.Min(4, utf8.Length); back++)
        {
            var b = utf8[^back];
            if ((b & 0xC0) == 0x80)
            {
                continue;
            }

            var needed = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
            return needed > back ? utf8.Length - back : utf8.Length;
        }

        return utf8.Length;
    }

    private static JsonNode? CreateLiteral(JsonValueKind kind) => kind switch
    {
        JsonValueKind.True => JsonValue.Create(true),
        JsonValueKind.False => JsonValue.Create(false),
        _ => null,
    };

    private static JsonValue CreateNumber(ReadOnlySpan<byte> text)
    {
        // Integers that fit a long are the common case; anything else keeps its exact text in a JsonElement.
        if (text.IndexOfAny("eE."u8) < 0 && Utf8Parser.TryParse(text, out long integer, out var consumed) && consumed == text.Length)
        {
            return JsonValue.Create(integer);
        }

        return JsonValue.Create(JsonElement.Parse(text))!;
    }
}
