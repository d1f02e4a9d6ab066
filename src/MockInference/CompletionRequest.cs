using System.Text;
using System.Text.Json;

namespace MockInference;

/// <summary>The parts of a chat or legacy completion request body that the mock acts on.</summary>
internal sealed class CompletionRequest
{
    public const string DefaultModel = "mock";
    public const int MaxChoices = 16;

    public string Model { get; private init; } = DefaultModel;
    public bool Stream { get; private init; }
    public bool IncludeUsage { get; private init; }
    public int N { get; private init; } = 1;

    /// <summary>
    /// <c>top_logprobs</c> when <c>logprobs: true</c> (0 to 20), else null: each content chunk then carries
    /// <c>logprobs.content</c> as OpenAI's do (about 2 KB per chunk at 20 alternatives).
    /// </summary>
    public int? TopLogprobs { get; private init; }
    public int? MaxTokens { get; private init; }

    /// <summary>The last user message (chat) or the prompt (legacy): what <c>x-mock-reply: echo</c> sends back.</summary>
    public string EchoText { get; private init; } = "";

    public int PromptTokens { get; private init; }

    /// <summary>Parses a body; on failure returns null and an OpenAI-style error message and param.</summary>
    public static CompletionRequest? Parse(
        ReadOnlyMemory<byte> body, CompletionKind kind, MockTokenizer tokenizer, out string? error, out string? param)
    {
        error = null;
        param = null;
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body);
        }
        catch (JsonException)
        {
            error = "We could not parse the JSON body of your request. The body must be valid JSON.";
            return null;
        }

        if (!JsonUnicode.AllStringsAreText(body.Span))
        {
            document.Dispose();
            error = "We could not parse the JSON body of your request: a string holds an unpaired UTF-16 surrogate escape (such as \\ud83d without its pair), which is not text.";
            return null;
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                error = "The request body must be a JSON object.";
                return null;
            }

            var model = DefaultModel;
            if (root.TryGetProperty("model", out var modelElement))
            {
                if (modelElement.ValueKind != JsonValueKind.String)
                {
                    (error, param) = ("'model' must be a string.", "model");
                    return null;
                }

                model = modelElement.GetString()!;
            }

            var stream = false;
            if (root.TryGetProperty("stream", out var streamElement) && streamElement.ValueKind != JsonValueKind.Null)
            {
                if (streamElement.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
                {
                    (error, param) = ("'stream' must be a boolean.", "stream");
                    return null;
                }

                stream = streamElement.GetBoolean();
            }

            var includeUsage = stream
                && root.TryGetProperty("stream_options", out var options)
                && options.ValueKind == JsonValueKind.Object
                && options.TryGetProperty("include_usage", out var includeElement)
                && includeElement.ValueKind == JsonValueKind.True;

            var n = 1;
            if (root.TryGetProperty("n", out var nElement) && nElement.ValueKind != JsonValueKind.Null)
            {
                if (!nElement.TryGetInt32(out n) || n < 1 || n > MaxChoices)
                {
                    (error, param) = ($"'n' must be an integer from 1 to {MaxChoices}.", "n");
                    return null;
                }
            }

            int? topLogprobs = null;
            if (root.TryGetProperty("logprobs", out var logprobsElement) && logprobsElement.ValueKind == JsonValueKind.True)
            {
                topLogprobs = 0;
            }

            if (root.TryGetProperty("top_logprobs", out var topElement) && topElement.ValueKind != JsonValueKind.Null)
            {
                if (!topElement.TryGetInt32(out var top) || top < 0 || top > 20)
                {
                    (error, param) = ("'top_logprobs' must be an integer from 0 to 20.", "top_logprobs");
                    return null;
                }

                if (topLogprobs is null)
                {
                    (error, param) = ("'logprobs' must be true when 'top_logprobs' is set.", "top_logprobs");
                    return null;
                }

                topLogprobs = top;
            }

            int? maxTokens = null;
            foreach (var name in (ReadOnlySpan<string>)["max_completion_tokens", "max_tokens"])
            {
                if (root.TryGetProperty(name, out var maxElement) && maxElement.ValueKind != JsonValueKind.Null)
                {
                    if (!maxElement.TryGetInt32(out var max) || max < 1)
                    {
                        (error, param) = ($"'{name}' must be a positive integer.", name);
                        return null;
                    }

                    maxTokens = max;
                    break;
                }
            }

            string echo;
            int promptTokens;
            if (kind == CompletionKind.Chat)
            {
                if (!TryReadMessages(root, tokenizer, out echo, out promptTokens, out error))
                {
                    param = "messages";
                    return null;
                }
            }
            else if (!TryReadPrompt(root, tokenizer, out echo, out promptTokens, out error))
            {
                param = "prompt";
                return null;
            }

            return new CompletionRequest
            {
                Model = model,
                Stream = stream,
                IncludeUsage = includeUsage,
                N = n,
                TopLogprobs = topLogprobs,
                MaxTokens = maxTokens,
                EchoText = echo,
                PromptTokens = promptTokens,
            };
        }
    }

    private static bool TryReadMessages(
        JsonElement root, MockTokenizer tokenizer, out string lastUser, out int promptTokens, out string? error)
    {
        lastUser = "";
        promptTokens = 0;
        error = null;
        if (!root.TryGetProperty("messages", out var messages) || messages.ValueKind != JsonValueKind.Array)
        {
            error = "'messages' is a required property and must be an array.";
            return false;
        }

        if (messages.GetArrayLength() == 0)
        {
            error = "'messages' must contain at least one message.";
            return false;
        }

        foreach (var message in messages.EnumerateArray())
        {
            if (message.ValueKind != JsonValueKind.Object
                || !message.TryGetProperty("role", out var role)
                || role.ValueKind != JsonValueKind.String)
            {
                error = "Each message must be an object with a string 'role'.";
                return false;
            }

            var text = message.TryGetProperty("content", out var content) ? ContentText(content) : "";
            promptTokens += tokenizer.CountTokens(text);
            if (role.ValueEquals("user"u8))
            {
                lastUser = text;
            }
        }

        return true;
    }

    private static bool TryReadPrompt(
        JsonElement root, MockTokenizer tokenizer, out string prompt, out int promptTokens, out string? error)
    {
        prompt = "";
        promptTokens = 0;
        error = null;
        if (!root.TryGetProperty("prompt", out var element))
        {
            error = "'prompt' is a required property.";
            return false;
        }

        if (element.ValueKind == JsonValueKind.String)
        {
            prompt = element.GetString()!;
        }
        else if (element.ValueKind == JsonValueKind.Array)
        {
            var builder = new StringBuilder();
            foreach (var item in element.EnumerateArray())
            {
                if (item.ValueKind == JsonValueKind.String)
                {
                    builder.Append(item.GetString());
                }
            }

            prompt = builder.ToString();
        }
        else
        {
            error = "'prompt' must be a string or an array of strings.";
            return false;
        }

        promptTokens = tokenizer.CountTokens(prompt);
        return true;
    }

    /// <summary>A message's text: a string, or the text parts of a content array.</summary>
    private static string ContentText(JsonElement content)
    {
        if (content.ValueKind == JsonValueKind.String)
        {
            return content.GetString()!;
        }

        if (content.ValueKind != JsonValueKind.Array)
        {
            return "";
        }

        var builder = new StringBuilder();
        foreach (var part in content.EnumerateArray())
        {
            if (part.ValueKind == JsonValueKind.Object
                && part.TryGetProperty("text", out var text)
                && text.ValueKind == JsonValueKind.String)
            {
                builder.Append(text.GetString());
            }
        }

        return builder.ToString();
    }
}
