namespace MockInference;

/// <summary>Which OpenAI endpoint a completion request came to.</summary>
internal enum CompletionKind
{
    /// <summary><c>/v1/chat/completions</c>: <c>chat.completion.chunk</c> events with <c>delta</c>.</summary>
    Chat,

    /// <summary><c>/v1/completions</c> (legacy): <c>text_completion</c> events with <c>text</c>.</summary>
    Text,
}
