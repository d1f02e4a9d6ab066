namespace Relay.Middleware.StructuredOutput;

/// <summary>Which text of a chat stream carries <c>parsed</c>, the partial value (<c>stream_options.partial_json</c>).</summary>
[Flags]
internal enum PartialJsonMode
{
    /// <summary>None.</summary>
    None = 0,

    /// <summary><c>delta.content</c> of a JSON reply (<c>true</c>): <c>delta.parsed</c>.</summary>
    Content = 1,

    /// <summary>The <c>arguments</c> of each tool call (<c>"tool_calls"</c>): <c>function.parsed</c>.</summary>
    ToolCalls = 2,

    /// <summary>Both (<c>"all"</c>).</summary>
    All = Content | ToolCalls,
}
