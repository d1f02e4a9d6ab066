using System.Text;
using System.Text.Json;
using Relay.Middleware.StructuredOutput;

namespace Relay.Middleware.Tests.StructuredOutput;

/// <summary>
/// The incremental schema check: each kind of violation is reported at the byte that makes the document invalid
/// for good (fed one byte at a time), with the JSON Pointer of the offending value; keywords it does not check
/// are validated by JsonSchema.Net when the document completes; an unusable schema is refused.
/// </summary>
public sealed class StructuredOutputValidatorTests
{
    private const string Schema = """
        {
          "type": "object",
          "properties": {
            "name": { "type": "string", "maxLength": 5 },
            "age": { "type": "integer", "minimum": 18 },
            "status": { "enum": ["active", "paused", "archived"] },
            "tags": { "type": "array", "items": { "type": "string" }, "maxItems": 2 },
            "orders": { "type": "array", "items": { "$ref": "#/$defs/order" } },
            "note": { "type": ["string", "null"] }
          },
          "required": ["name"],
          "additionalProperties": false,
          "$defs": {
            "order": {
              "type": "object",
              "properties": { "qty": { "type": "integer" }, "a/b~c": { "const": 1 } },
              "required": ["qty"],
              "additionalProperties": false
            }
          }
        }
        """;

    [Theory]
    [InlineData("""{"name":"Ada","age":36,"status":"paused","tags":["x","y"],"orders":[{"qty":2},{"qty":3.0,"a/b~c":1}],"note":null}""")]
    [InlineData("""{ "name" : "日本語🗼" , "status" : "archived" }""")]
    [InlineData("""{"name":"","orders":[]}""")]
    public void ValidDocument_FedOneByteAtATime_HasNoViolation(string json)
    {
        var validator = Create(Schema);
        var utf8 = Encoding.UTF8.GetBytes(json);
        for (var i = 0; i < utf8.Length; i++)
        {
            Assert.True(validator.TryAppend(utf8.AsSpan(i, 1)), validator.Violation?.ToString());
        }

        Assert.True(validator.TryComplete(), validator.Violation?.ToString());
    }

    [Theory]
    [InlineData("""{"name":5""", "{\"name\":5", "/name", "Expected string")]
    [InlineData("""{"name":"Ada","age":"36""", "{\"name\":\"Ada\",\"age\":\"", "/age", "Expected integer")]
    [InlineData("""{"name":"Ada","oops":1""", "{\"name\":\"Ada\",\"oops\"", "/oops", "not allowed")]
    [InlineData("""{"name":"Ada","status":"pausd","x":1""", "{\"name\":\"Ada\",\"status\":\"pausd", "/status", "enum")]
    [InlineData("""{"name":"Ada","status":"pause"}""", "{\"name\":\"Ada\",\"status\":\"pause\"", "/status", "enum")]
    [InlineData("""{"name":"Ada","status":1}""", "{\"name\":\"Ada\",\"status\":1", "/status", "enum")]
    [InlineData("""{"name":"Adalbert"}""", "{\"name\":\"Adalbe", "/name", "maxLength")]
    [InlineData("""{"name":"日本語🗼ab"}""", "{\"name\":\"日本語🗼ab", "/name", "maxLength")]
    [InlineData("""{"name":"A","tags":["x","y","z"]}""", "{\"name\":\"A\",\"tags\":[\"x\",\"y\",\"", "/tags", "maxItems")]
    [InlineData("""{"age":20}""", "{\"age\":20}", "", "'name' is missing")]
    [InlineData("""{"name":"A","age":1.5}""", "{\"name\":\"A\",\"age\":1.5}", "/age", "integer")]
    [InlineData("""{"name":"A","orders":[{"qty":1},{"qty":true}]}""", "{\"name\":\"A\",\"orders\":[{\"qty\":1},{\"qty\":t", "/orders/1/qty", "Expected integer")]
    [InlineData("""{"name":"A","orders":[{"qty":1,"a/b~c":2}]}""", "{\"name\":\"A\",\"orders\":[{\"qty\":1,\"a/b~c\":2}", "/orders/0/a~1b~0c", "enum")]
    [InlineData("""{"name":"A","orders":[{}]}""", "{\"name\":\"A\",\"orders\":[{}", "/orders/0", "'qty' is missing")]
    [InlineData("""{"name":"A","note":[]}""", "{\"name\":\"A\",\"note\":[", "/note", "Expected string or null")]
    [InlineData("""{"name" 1}""", "{\"name\" 1", "", "not valid JSON")]
    [InlineData("""{"name":"A","orders":[{"qty":1},]}""", "{\"name\":\"A\",\"orders\":[{\"qty\":1},]", "/orders", "not valid JSON")]
    [InlineData("""[1]""", "[", "", "Expected object")]
    public void Violation_IsReportedAtTheFirstByteThatCannotBeRepaired_WithItsPointer(string json, string upTo, string pointer, string message)
    {
        var validator = Create(Schema);
        var utf8 = Encoding.UTF8.GetBytes(json);
        var at = -1;
        for (var i = 0; i < utf8.Length && at < 0; i++)
        {
            at = validator.TryAppend(utf8.AsSpan(i, 1)) ? -1 : i;
        }

        Assert.True(at >= 0, "no violation while streaming");
        Assert.Equal(upTo, Encoding.UTF8.GetString(utf8, 0, at + 1));
        Assert.Equal(pointer, validator.Violation!.Pointer);
        Assert.Contains(message, validator.Violation.Message, StringComparison.Ordinal);
        Assert.False(validator.TryAppend("}"u8));
    }

    [Fact]
    public void UncheckedKeyword_IsValidatedInFullWhenTheDocumentCompletes()
    {
        var validator = Create(Schema);

        Assert.True(validator.TryAppend("""{"name":"A","age":12}"""u8));
        Assert.False(validator.TryComplete());
        Assert.Equal("/age", validator.Violation!.Pointer);
    }

    [Fact]
    public void SchemaOfCheckedKeywordsOnly_NeedsNoFullValidation()
    {
        using var schema = JsonDocument.Parse("""{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false,"title":"t"}""");
        Assert.False(CompiledSchema.TryCompile(schema.RootElement, out _)!.NeedsFullValidation);
        using var other = JsonDocument.Parse("""{"type":"object","properties":{"a":{"type":"string","pattern":"^x"}}}""");
        Assert.True(CompiledSchema.TryCompile(other.RootElement, out _)!.NeedsFullValidation);
    }

    [Fact]
    public void RecursiveSchema_IsCheckedAtEveryDepth()
    {
        var validator = Create("""{"$ref":"#/$defs/node","$defs":{"node":{"type":"object","properties":{"children":{"type":"array","items":{"$ref":"#/$defs/node"}}},"additionalProperties":false}}}""");

        Assert.True(validator.TryAppend("""{"children":[{"children":[{}]},{"children":[{"#"""u8));
        Assert.False(validator.TryAppend("\""u8));
        Assert.Equal("/children/1/children/0/#", validator.Violation!.Pointer);
    }

    [Fact]
    public void JsonObjectFormat_ChecksSyntaxAndThatTheRootIsAnObject()
    {
        var validator = StructuredOutputValidator.TryCreate(null, out _)!;
        Assert.True(validator.TryAppend("""{"anything":[1,"x"]}"""u8));
        Assert.True(validator.TryComplete());

        var array = StructuredOutputValidator.TryCreate(null, out _)!;
        Assert.False(array.TryAppend("[]"u8));
    }

    [Theory]
    [InlineData("""{"type":5}""")]
    [InlineData("""{"type":"strin"}""")]
    [InlineData("""{"properties":[]}""")]
    [InlineData("""{"maxLength":-1}""")]
    [InlineData("""{"$ref":"#/$defs/missing"}""")]
    [InlineData("""{"$ref":"https://example.com/schema.json"}""")]
    [InlineData("""{"required":"name"}""")]
    [InlineData("""[]""")]
    public void UnusableSchema_IsRefusedWithTheReason(string schema)
    {
        using var document = JsonDocument.Parse(schema);

        Assert.Null(StructuredOutputValidator.TryCreate(document.RootElement, out var error));
        Assert.False(string.IsNullOrEmpty(error));
    }

    private static StructuredOutputValidator Create(string schema)
    {
        using var document = JsonDocument.Parse(schema);
        return StructuredOutputValidator.TryCreate(document.RootElement.Clone(), out var error) ?? throw new InvalidOperationException(error);
    }
}
