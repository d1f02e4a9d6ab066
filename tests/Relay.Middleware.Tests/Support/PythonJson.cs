using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Relay.Middleware.Tests.Support;

/// <summary>Python's <c>json.dumps</c> defaults (", " and ": " separators, ASCII-only), to compare with summaries made by it.</summary>
internal static class PythonJson
{
    public static void Dump(JsonElement value, StringBuilder output)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.Object:
                output.Append('{');
                var first = true;
                foreach (var property in value.EnumerateObject())
                {
                    output.Append(first ? "" : ", ");
                    first = false;
                    DumpString(property.Name, output);
                    output.Append(": ");
                    Dump(property.Value, output);
                }

                output.Append('}');
                break;
            case JsonValueKind.Array:
                output.Append('[');
                var firstItem = true;
                foreach (var item in value.EnumerateArray())
                {
                    output.Append(firstItem ? "" : ", ");
                    firstItem = false;
                    Dump(item, output);
                }

                output.Append(']');
                break;
            case JsonValueKind.String:
                DumpString(value.GetString()!, output);
                break;
            default:
                output.Append(value.GetRawText());
                break;
        }
    }

    private static void DumpString(string text, StringBuilder output)
    {
        output.Append('"');
        foreach (var c in text)
        {
            switch (c)
            {
                case '"': output.Append("\\\""); break;
                case '\\': output.Append("\\\\"); break;
                case '\n': output.Append("\\n"); break;
                case '\r': output.Append("\\r"); break;
                case '\t': output.Append("\\t"); break;
                case '\b': output.Append("\\b"); break;
                case '\f': output.Append("\\f"); break;
                default:
                    if (c < 0x20 || c > 0x7E)
                    {
                        output.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        output.Append(c);
                    }

                    break;
            }
        }

        output.Append('"');
    }
}
