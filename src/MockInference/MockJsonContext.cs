using System.Text.Json.Serialization;

namespace MockInference;

[JsonSerializable(typeof(MockRequestRecord))]
internal sealed partial class MockJsonContext : JsonSerializerContext;
