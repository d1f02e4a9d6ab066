using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Relay.Middleware.StructuredOutput;

/// <summary>
/// Parses a JSON document that arrives in pieces (a model's streamed output) and gives, at any point, the value
/// the text so far stands for. Each byte is read once: the parser keeps its state between pieces and never
/// re-reads what it has consumed, so feeding a document of n bytes costs O(n) in all, however it is split.
/// </summary>
/// <remarks>
/// <para>
/// Syntax is strict (RFC 8259, as <see cref="Utf8JsonReader"/> reads it): the first byte that can no longer be
/// part of a JSON document makes <see cref="TryAppend(ReadOnlySpan{byte})"/> return false, with the byte's
/// position in <see cref="Error"/>. No comments, trailing commas, single quotes, <c>NaN</c> or
/// <c>Infinity</c>; nesting deeper than <see cref="MaxDepth"/> (64 by default, as
/// <see cref="JsonReaderOptions.MaxDepth"/>) is an error. Like <see cref="Utf8JsonReader"/>, the bytes inside
/// strings are not checked for UTF-8 validity; invalid sequences read as U+FFFD.
/// </para>
/// <para>
/// The partial value follows npm <c>partial-json</c> with <c>Allow.ALL</c>, for each kind of incomplete value:
/// </para>
/// <list type="bullet">
/// <item><description>An unterminated string shows the text so far (<c>{"a":"Ali</c> is <c>{"a":"Ali"}</c>); an
/// incomplete escape (<c>\</c>, <c>\u00</c>) or UTF-8 sequence at its end is left out until it completes.</description></item>
/// <item><description>A number shows its longest valid prefix: <c>12.</c> is 12, <c>2.5e-</c> is 2.5, a lone
/// <c>-</c> is no value yet.</description></item>
/// <item><description>A literal is completed from its first letter: <c>t</c> is true, <c>fals</c> false, <c>nu</c>
/// null.</description></item>
/// <item><description>A property whose key is unfinished, or finished but without a value yet (<c>{"a":1,"b</c>,
/// <c>{"a":1,"b":</c>), is not shown (JavaScript's <c>undefined</c>, which JSON cannot carry).</description></item>
/// <item><description>Open objects and arrays show what they hold so far (<c>[1,{"x":</c> is <c>[1,{}]</c>).</description></item>
/// <item><description>Nothing yet (no text, whitespace, a lone <c>-</c>, a root key-less <c>{</c> is
/// <c>{}</c>): <see cref="TryGetValue"/> returns false only when no value has begun.</description></item>
/// </list>
/// <para>
/// Duplicate keys: the last one wins, as in <c>JSON.parse</c>. Values are only ever extended: a completed
/// value never changes.
/// </para>
/// <para>Single consumer: not thread-safe.</para>
/// </remarks>
public sealed partial class PartialJsonParser
{
    /// <summary>The default maximum nesting depth, the same as <see cref="JsonReaderOptions.MaxDepth"/>'s default.</summary>
    public const int DefaultMaxDepth = 64;

    /// <summary>The largest <see cref="MaxDepth"/> allowed: <see cref="Utf8JsonWriter"/>'s default limit, so any
    /// value the parser holds can be written.</summary>
    public const int MaxAllowedDepth = 1000;

    private static readonly SearchValues<byte> s_stringSpecial = SearchValues.Create(CreateStringSpecialBytes());

    private readonly IJsonStreamObserver? _observer;
    private Frame[] _frames = new Frame[8];
    private int _depth;
    private Expect _expect = Expect.RootValue;
    private Token _token;
    private bool _stringIsKey;
    private byte[] _text = new byte[64];
    private int _textLength;
    private int _textReported;
    private int _unicodeDigits;
    private int _unicodeValue;
    private int _highSurrogate = -1;
    private int _literalMatched;
    private string? _key;
    private JsonNode? _root;
    private bool _hasRoot;
    private long _consumed;
    private Encoder? _encoder;
    private JsonNode? _shownIn;
    private string? _shownKey;
    private JsonNode? _shownReplaced;
    private bool _shownReplacing;

    /// <summary>Creates a parser with the default maximum depth (64).</summary>
    public PartialJsonParser()
        : this(DefaultMaxDepth)
    {
    }

    /// <summary>Creates a parser that rejects nesting deeper than <paramref name="maxDepth"/>.</summary>
    public PartialJsonParser(int maxDepth)
        : this(maxDepth, observer: null)
    {
    }

    internal PartialJsonParser(int maxDepth, IJsonStreamObserver? observer)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxDepth, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxDepth, MaxAllowedDepth);
        MaxDepth = maxDepth;
        _observer = observer;
    }

    private enum Expect : byte
    {
        RootValue,
        ObjectKeyOrEnd,
        ObjectKey,
        Colon,
        ObjectValue,
        ObjectCommaOrEnd,
        ArrayValueOrEnd,
        ArrayValue,
        ArrayCommaOrEnd,
        End,
    }

    private enum Token : byte
    {
        None,
        String,
        StringEscape,
        StringUnicode,
        Minus,
        Zero,
        Integer,
        Dot,
        Fraction,
        Exponent,
        ExponentSign,
        ExponentDigits,
        True,
        False,
        Null,
    }

    private enum NumberStep : byte
    {
        Consumed,
        Ended,
        Invalid,
    }

    /// <summary>The deepest nesting accepted.</summary>
    public int MaxDepth { get; }

    /// <summary>How many UTF-8 bytes have been fed.</summary>
    public long BytesConsumed => _consumed;

    /// <summary>The reason the text was rejected; null while it can still be (part of) a JSON document.</summary>
    public PartialJsonError? Error { get; private set; }

    /// <summary>True when a whole document has been read (only whitespace may follow).</summary>
    public bool IsComplete => Error is null && _expect == Expect.End && _token == Token.None;

    /// <summary>Feeds the next piece of the document as UTF-8.</summary>
    /// <returns>False when the text is not JSON (now or earlier); <see cref="Error"/> says where.</returns>
    public bool TryAppend(ReadOnlySpan<byte> utf8)
    {
        if (Error is not null)
        {
            return false;
        }

        HideShownValue();
        var i = 0;
        while (i < utf8.Length)
        {
            if (_token == Token.String)
            {
                // Fast path: copy the run of ordinary string bytes up to the next quote, backslash or control byte.
                var rest = utf8[i..];
                var run = rest.IndexOfAny(s_stringSpecial);
                if (run < 0)
                {
                    AppendText(rest);
                    break;
                }

                AppendText(rest[..run]);
                i += run;
                var b = utf8[i];
                if (b == (byte)'"')
                {
                    EndString();
                }
                else if (b == (byte)'\\')
                {
                    _token = Token.StringEscape;
                }
                else
                {
                    // RFC 8259 section 7: "All Unicode characters may be placed within the quotation marks, except
                    // for the characters that MUST be escaped: quotation mark, reverse solidus, and the control
                    // characters (U+0000 through U+001F)."
                    return Fail(i, $"{Describe(b)} must be escaped inside a JSON string.");
                }

                i++;
                continue;
            }

            if (!Step(utf8[i], i))
            {
                return false;
            }

            i++;
        }

        _consumed += utf8.Length;
        ReportStringChunk();
        return true;
    }

    /// <summary>Feeds the next piece of the document as text (a surrogate pair may be split between pieces).</summary>
    /// <returns>False when the text is not JSON (now or earlier); <see cref="Error"/> says where.</returns>
    public bool TryAppend(ReadOnlySpan<char> text)
    {
        _encoder ??= Encoding.UTF8.GetEncoder();
        Span<byte> buffer = stackalloc byte[1024];
        while (!text.IsEmpty)
        {
            _encoder.Convert(text, buffer, flush: false, out var charsUsed, out var bytesUsed, out _);
            if (!TryAppend(buffer[..bytesUsed]))
            {
                return false;
            }

            text = text[charsUsed..];
        }

        return Error is null;
    }

    /// <summary>Says that the text has ended: a number at the very end is complete; anything still open is an error.</summary>
    /// <returns>True when the text is one whole JSON document.</returns>
    public bool TryComplete()
    {
        if (_encoder is not null && Error is null)
        {
            Span<byte> buffer = stackalloc byte[16];
            _encoder.Convert(ReadOnlySpan<char>.Empty, buffer, flush: true, out _, out var bytesUsed, out _);
            TryAppend(buffer[..bytesUsed]);
        }

        if (Error is not null)
        {
            return false;
        }

        HideShownValue();
        if (_token is Token.Zero or Token.Integer or Token.Fraction or Token.ExponentDigits)
        {
            EndNumber();
        }

        return (_expect == Expect.End && _token == Token.None)
            || Fail(0, "The JSON text ended before the document was complete.");
    }

    /// <summary>
    /// Gets the value the text so far stands for (see the remarks for what an incomplete value shows).
    /// </summary>
    /// <param name="value">The partial value (null for JSON null). It belongs to the parser and changes as the
    /// parser is fed: read or write it before the next call, do not modify it, and
    /// <see cref="JsonNode.DeepClone"/> it to keep it.</param>
    /// <returns>False when no value has begun yet (nothing but whitespace, or a lone <c>-</c>).</returns>
    /// <remarks>Costs the length of the unfinished string or number at the end, not the document's.</remarks>
    public bool TryGetValue(out JsonNode? value)
    {
        HideShownValue();
        var hasTail = TryCreateTail(out var tail);
        if (_depth == 0)
        {
            value = _hasRoot ? _root : tail;
            return _hasRoot || hasTail;
        }

        if (hasTail)
        {
            ShowValue(tail);
        }

        value = _root;
        return true;
    }

    /// <summary>Writes the value the text so far stands for, if any.</summary>
    /// <returns>False (and nothing written) when no value has begun yet.</returns>
    public bool TryWriteValue(Utf8JsonWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        if (!TryGetValue(out var value))
        {
            return false;
        }

        if (value is null)
        {
            writer.WriteNullValue();
        }
        else
        {
            value.WriteTo(writer);
        }

        return true;
    }

    private bool Step(byte b, int i)
    {
        switch (_token)
        {
            case Token.None:
                return Structural(b, i);
            case Token.StringEscape:
                return Escape(b, i);
            case Token.StringUnicode:
                return UnicodeDigit(b, i);
            case Token.True:
                return Literal(b, i, "true"u8);
            case Token.False:
                return Literal(b, i, "false"u8);
            case Token.Null:
                return Literal(b, i, "null"u8);
            default:
                switch (StepNumber(b))
                {
                    case NumberStep.Consumed:
                        AppendText([b]);
                        return true;
                    case NumberStep.Ended:
                        EndNumber();
                        return Structural(b, i);
                    default:
                        return Fail(i, $"{Describe(b)} cannot continue the number '{Encoding.UTF8.GetString(_text, 0, _textLength)}'.");
                }
        }
    }

    private bool Structural(byte b, int i)
    {
        // RFC 8259 section 2: "ws = *( %x20 / %x09 / %x0A / %x0D )" is allowed before or after any structural character.
        if (b is (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\r')
        {
            return true;
        }

        switch (_expect)
        {
            case Expect.ArrayValueOrEnd when b == (byte)']':
                return EndContainer();
            case Expect.RootValue or Expect.ObjectValue or Expect.ArrayValue or Expect.ArrayValueOrEnd:
                return StartValue(b, i);
            case Expect.ObjectKeyOrEnd when b == (byte)'}':
                return EndContainer();
            case Expect.ObjectKeyOrEnd or Expect.ObjectKey when b == (byte)'"':
                StartString(isKey: true);
                return true;
            case Expect.Colon when b == (byte)':':
                _expect = Expect.ObjectValue;
                return true;
            case Expect.ObjectCommaOrEnd when b == (byte)',':
                _expect = Expect.ObjectKey;
                return true;
            case Expect.ObjectCommaOrEnd when b == (byte)'}':
                return EndContainer();
            case Expect.ArrayCommaOrEnd when b == (byte)',':
                _expect = Expect.ArrayValue;
                return true;
            case Expect.ArrayCommaOrEnd when b == (byte)']':
                return EndContainer();
            default:
                return Fail(i, $"{Describe(b)} is not valid here: expected {DescribeExpected(_expect)}.");
        }
    }

    private bool StartValue(byte b, int i)
    {
        switch (b)
        {
            case (byte)'"':
                _observer?.OnValueStart(JsonValueKind.String);
                StartString(isKey: false);
                return true;
            case (byte)'{':
            case (byte)'[':
                if (_depth >= MaxDepth)
                {
                    return Fail(i, $"The document is nested deeper than the maximum depth of {MaxDepth}.");
                }

                var isObject = b == (byte)'{';
                _observer?.OnValueStart(isObject ? JsonValueKind.Object : JsonValueKind.Array);
                JsonNode container = isObject ? new JsonObject() : new JsonArray();
                Attach(container);
                if (_depth == _frames.Length)
                {
                    Array.Resize(ref _frames, _frames.Length * 2);
                }

                _frames[_depth++] = new Frame(container, isObject);
                _expect = isObject ? Expect.ObjectKeyOrEnd : Expect.ArrayValueOrEnd;
                return true;
            case (byte)'-':
                StartNumber(b, Token.Minus);
                return true;
            case (byte)'0':
                StartNumber(b, Token.Zero);
                return true;
            case >= (byte)'1' and <= (byte)'9':
                StartNumber(b, Token.Integer);
                return true;
            case (byte)'t':
                StartLiteral(Token.True, JsonValueKind.True);
                return true;
            case (byte)'f':
                StartLiteral(Token.False, JsonValueKind.False);
                return true;
            case (byte)'n':
                StartLiteral(Token.Null, JsonValueKind.Null);
                return true;
            default:
                return Fail(i, $"{Describe(b)} cannot start a JSON value.");
        }
    }

    private bool EndContainer()
    {
        var frame = _frames[--_depth];
        _frames[_depth] = default;
        _observer?.OnValueEnd(frame.IsObject ? JsonValueKind.Object : JsonValueKind.Array, default);
        EndValue();
        return true;
    }

    private void EndValue() =>
        _expect = _depth == 0 ? Expect.End
            : _frames[_depth - 1].IsObject ? Expect.ObjectCommaOrEnd
            : Expect.ArrayCommaOrEnd;

    private bool Fail(int index, string message)
    {
        Error = new PartialJsonError(_consumed + index, message);
        return false;
    }

    private static string Describe(byte b) =>
        b is >= 0x21 and < 0x7F ? $"'{(char)b}'" : $"The byte 0x{b:X2}";

    private static string DescribeExpected(Expect expect) => expect switch
    {
        Expect.ObjectKeyOrEnd => "a property name or '}'",
        Expect.ObjectKey => "a property name",
        Expect.Colon => "':'",
        Expect.ObjectCommaOrEnd => "',' or '}'",
        Expect.ArrayCommaOrEnd => "',' or ']'",
        Expect.End => "the end of the document",
        _ => "a value",
    };

    private static byte[] CreateStringSpecialBytes()
    {
        var bytes = new byte[34];
        for (var b = 0; b < 0x20; b++)
        {
            bytes[b] = (byte)b;
        }

        bytes[32] = (byte)'"';
        bytes[33] = (byte)'\\';
        return bytes;
    }

    private readonly record struct Frame(JsonNode Container, bool IsObject);
}
