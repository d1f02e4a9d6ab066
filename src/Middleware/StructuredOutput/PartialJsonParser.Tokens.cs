using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Relay.Middleware.StructuredOutput;

/// <content>Strings, escapes, numbers and literals: the tokens read byte by byte.</content>
public sealed partial class PartialJsonParser
{
    private void StartString(bool isKey)
    {
        _token = Token.String;
        _stringIsKey = isKey;
        _textLength = 0;
        _textReported = 0;
    }

    private void EndString()
    {
        FlushLoneSurrogate();
        ReportStringChunk();
        _token = Token.None;
        var text = _text.AsSpan(0, _textLength);
        if (_stringIsKey)
        {
            _key = Encoding.UTF8.GetString(text);
            _observer?.OnPropertyName(text);
            _expect = Expect.Colon;
            return;
        }

        _observer?.OnValueEnd(JsonValueKind.String, default);
        Attach(JsonValue.Create(Encoding.UTF8.GetString(text)));
        EndValue();
    }

    private bool Escape(byte b, int i)
    {
        // RFC 8259 section 7: escape = %x22 / %x5C / %x2F / %x62 / %x66 / %x6E / %x72 / %x74 / %x75 4HEXDIG
        byte decoded;
        switch (b)
        {
            case (byte)'"' or (byte)'\\' or (byte)'/':
                decoded = b;
                break;
            case (byte)'b':
                decoded = (byte)'\b';
                break;
            case (byte)'f':
                decoded = (byte)'\f';
                break;
            case (byte)'n':
                decoded = (byte)'\n';
                break;
            case (byte)'r':
                decoded = (byte)'\r';
                break;
            case (byte)'t':
                decoded = (byte)'\t';
                break;
            case (byte)'u':
                _token = Token.StringUnicode;
                _unicodeDigits = 0;
                _unicodeValue = 0;
                return true;
            default:
                return Fail(i, $"{Describe(b)} is not a valid escape in a JSON string.");
        }

        AppendText([decoded]);
        _token = Token.String;
        return true;
    }

    private bool UnicodeDigit(byte b, int i)
    {
        var digit = HexConverter(b);
        if (digit < 0)
        {
            return Fail(i, $"{Describe(b)} is not a hexadecimal digit of a \\u escape.");
        }

        _unicodeValue = (_unicodeValue << 4) | digit;
        if (++_unicodeDigits < 4)
        {
            return true;
        }

        _token = Token.String;
        var unit = _unicodeValue;
        if (_highSurrogate >= 0 && char.IsLowSurrogate((char)unit))
        {
            var high = (char)_highSurrogate;
            _highSurrogate = -1;
            AppendRune(new Rune(high, (char)unit));
            return true;
        }

        FlushLoneSurrogate();
        if (char.IsHighSurrogate((char)unit))
        {
            // Held until the next escape says whether it is the low half of a pair.
            _highSurrogate = unit;
        }
        else
        {
            AppendRune(char.IsLowSurrogate((char)unit) ? Rune.ReplacementChar : new Rune(unit));
        }

        return true;
    }

    private bool Literal(byte b, int i, ReadOnlySpan<byte> literal)
    {
        if (b != literal[_literalMatched])
        {
            return Fail(i, $"{Describe(b)} does not continue the literal '{Encoding.ASCII.GetString(literal)}'.");
        }

        if (++_literalMatched < literal.Length)
        {
            return true;
        }

        var kind = _token switch
        {
            Token.True => JsonValueKind.True,
            Token.False => JsonValueKind.False,
            _ => JsonValueKind.Null,
        };
        _token = Token.None;
        _observer?.OnValueEnd(kind, default);
        Attach(CreateLiteral(kind));
        EndValue();
        return true;
    }

    private void StartLiteral(Token token, JsonValueKind kind)
    {
        _observer?.OnValueStart(kind);
        _token = token;
        _literalMatched = 1;
    }

    private void StartNumber(byte b, Token token)
    {
        _observer?.OnValueStart(JsonValueKind.Number);
        _token = token;
        _textLength = 0;
        AppendText([b]);
    }

    // RFC 8259 section 6: number = [ minus ] int [ frac ] [ exp ]; int = zero / ( digit1-9 *DIGIT );
    // frac = decimal-point 1*DIGIT; exp = e [ minus / plus ] 1*DIGIT
    private NumberStep StepNumber(byte b)
    {
        var isDigit = b is >= (byte)'0' and <= (byte)'9';
        var isExponent = b is (byte)'e' or (byte)'E';
        (Token next, NumberStep step) = _token switch
        {
            Token.Minus when b == (byte)'0' => (Token.Zero, NumberStep.Consumed),
            Token.Minus when isDigit => (Token.Integer, NumberStep.Consumed),
            Token.Zero or Token.Integer when b == (byte)'.' => (Token.Dot, NumberStep.Consumed),
            Token.Zero or Token.Integer or Token.Fraction when isExponent => (Token.Exponent, NumberStep.Consumed),
            Token.Zero when isDigit => (_token, NumberStep.Invalid),
            Token.Integer or Token.Fraction or Token.ExponentDigits when isDigit => (_token, NumberStep.Consumed),
            Token.Dot when isDigit => (Token.Fraction, NumberStep.Consumed),
            Token.Exponent when b is (byte)'+' or (byte)'-' => (Token.ExponentSign, NumberStep.Consumed),
            Token.Exponent or Token.ExponentSign when isDigit => (Token.ExponentDigits, NumberStep.Consumed),
            Token.Zero or Token.Integer or Token.Fraction or Token.ExponentDigits => (_token, NumberStep.Ended),
            _ => (_token, NumberStep.Invalid),
        };
        _token = next;
        return step;
    }

    private void EndNumber()
    {
        _token = Token.None;
        var text = _text.AsSpan(0, _textLength);
        _observer?.OnValueEnd(JsonValueKind.Number, text);
        Attach(CreateNumber(text));
        EndValue();
    }

    private void ReportStringChunk()
    {
        if (_observer is not null && _token is Token.String or Token.StringEscape or Token.StringUnicode
            && !_stringIsKey && _textReported < _textLength)
        {
            _observer.OnStringChunk(_text.AsSpan(_textReported, _textLength - _textReported));
            _textReported = _textLength;
        }
    }

    private void FlushLoneSurrogate()
    {
        if (_highSurrogate >= 0)
        {
            // A high surrogate not followed by a low one (STJ accepts it too); it reads as U+FFFD.
            _highSurrogate = -1;
            AppendRune(Rune.ReplacementChar);
        }
    }

    private void AppendRune(Rune rune)
    {
        Span<byte> utf8 = stackalloc byte[4];
        AppendText(utf8[..rune.EncodeToUtf8(utf8)]);
    }

    private void AppendText(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty)
        {
            return;
        }

        FlushLoneSurrogate();

        if (_textLength + bytes.Length > _text.Length)
        {
            Array.Resize(ref _text, Math.Max(_text.Length * 2, _textLength + bytes.Length));
        }

        bytes.CopyTo(_text.AsSpan(_textLength));
        _textLength += bytes.Length;
    }

    private static int HexConverter(byte b) => b switch
    {
        >= (byte)'0' and <= (byte)'9' => b - '0',
        >= (byte)'a' and <= (byte)'f' => b - 'a' + 10,
        >= (byte)'A' and <= (byte)'F' => b - 'A' + 10,
        _ => -1,
    };
}
