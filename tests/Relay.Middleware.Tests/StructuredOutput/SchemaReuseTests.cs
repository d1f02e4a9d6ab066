using System.Text;
using System.Text.Json;
using Relay.Middleware.StructuredOutput;

namespace Relay.Middleware.Tests.StructuredOutput;

/// <summary>
/// A schema compiled once serves every request that sends the same text: each validator keeps its own document
/// state, and the compiled schema outlives the request body it came from.
/// </summary>
public sealed class SchemaReuseTests
{
    private const string Schema = """{"type":"object","properties":{"kind":{"enum":["alpha","beta"]},"n":{"type":"integer","minimum":3}},"additionalProperties":false}""";

    [Fact]
    public void SameSchemaText_AfterTheFirstRequestBodyIsDisposed_StillValidates_EachDocumentOnItsOwn()
    {
        StructuredOutputValidator first;
        using (var body = JsonDocument.Parse(Schema))
        {
            first = StructuredOutputValidator.TryCreate(body.RootElement, out var error) ?? throw new InvalidOperationException(error);
        }

        StructuredOutputValidator second;
        using (var body = JsonDocument.Parse(Schema))
        {
            second = StructuredOutputValidator.TryCreate(body.RootElement, out var error) ?? throw new InvalidOperationException(error);
        }

        // Interleaved: one goes off-schema (an enum value no allowed one starts with), the other stays valid.
        Assert.True(first.TryAppend("{\"kind\":\"al"u8));
        Assert.True(second.TryAppend("{\"kind\":\"be"u8));
        Assert.False(second.TryAppend("x"u8));
        Assert.Equal("/kind", second.Violation!.Pointer);
        Assert.True(first.TryAppend(Encoding.UTF8.GetBytes("pha\",\"n\":2}")));

        // The keyword checked at completion (minimum) still runs on the reused schema.
        Assert.False(first.TryComplete());
        Assert.Equal("/n", first.Violation!.Pointer);
    }
}
