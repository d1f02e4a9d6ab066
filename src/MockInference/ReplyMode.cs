namespace MockInference;

/// <summary>What the reply text is made of (<c>x-mock-reply</c>).</summary>
internal enum ReplyMode
{
    Text,
    Echo,
    Json,
}
