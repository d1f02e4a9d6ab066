namespace Relay.Middleware.Cadence;

/// <summary>Which text field of a choice's delta a content token extends.</summary>
internal enum DeltaKind
{
    None,

    /// <summary><c>delta.content</c>.</summary>
    Content,

    /// <summary><c>delta.reasoning_content</c> (DeepSeek, Qwen) or <c>delta.reasoning</c> (Groq).</summary>
    Reasoning,

    /// <summary><c>delta.refusal</c>.</summary>
    Refusal,

    /// <summary><c>delta.tool_calls[0].function.arguments</c> of a continuing call (no id, name or type).</summary>
    ToolArguments,
}
