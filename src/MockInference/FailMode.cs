namespace MockInference;

/// <summary>How an injected mid-stream failure looks (<c>x-mock-fail-mode</c>).</summary>
internal enum FailMode
{
    /// <summary>An OpenAI-style error event, then the response ends without [DONE].</summary>
    ErrorEvent,

    /// <summary>Half an event, then the connection is aborted.</summary>
    Reset,
}
