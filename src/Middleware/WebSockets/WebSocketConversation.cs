using System.Text;
using System.Text.Json.Nodes;

namespace Relay.Middleware.WebSockets;

/// <summary>
/// The state of one WebSocket conversation (docs/websocket-protocol.md): the messages so far, the request
/// parameters of the latest <c>response.create</c>, and the messages appended while a response runs. Used by the
/// session's receive loop only, so it needs no lock.
/// </summary>
internal sealed class WebSocketConversation
{
    private readonly List<JsonNode> _messages = [];
    private readonly List<JsonNode> _appended = [];
    private JsonObject _parameters = [];

    /// <summary>Whether there is no message to answer.</summary>
    public bool IsEmpty => _messages.Count == 0;

    /// <summary>A request with messages is self-contained: they replace the conversation, as an HTTP request would.</summary>
    public void ReplaceMessages(JsonArray messages)
    {
        _messages.Clear();
        foreach (var message in messages)
        {
            _messages.Add(message!.DeepClone());
        }
    }

    /// <summary>The request parameters (all but <c>messages</c> and <c>stream</c>) of the responses from now on.</summary>
    public void SetParameters(JsonObject parameters) => _parameters = parameters;

    /// <summary>Appends a message; while a response runs it waits until that response is settled.</summary>
    public void Append(JsonNode item, bool responseRunning)
        => (responseRunning ? _appended : _messages).Add(item);

    /// <summary>
    /// Folds a finished response in: the assistant's reply as delivered (<paramref name="assistantText"/>, UTF-8),
    /// then the messages appended while it ran, so that a cut-over request reads: original messages, partial reply,
    /// appended messages.
    /// </summary>
    public void Settle(ReadOnlySpan<byte> assistantText)
    {
        if (!assistantText.IsEmpty)
        {
            _messages.Add(new JsonObject { ["role"] = "assistant", ["content"] = Encoding.UTF8.GetString(assistantText) });
        }

        _messages.AddRange(_appended);
        _appended.Clear();
    }

    /// <summary>The chat completions request of the next response: the parameters, <c>stream: true</c>, the messages.</summary>
    public byte[] BuildRequestBody()
    {
        var request = new JsonObject();
        foreach (var (key, value) in _parameters)
        {
            if (key is not ("messages" or "stream"))
            {
                request[key] = value?.DeepClone();
            }
        }

        request["stream"] = true;
        request["messages"] = new JsonArray([.. _messages.Select(static m => m.DeepClone())]);
        return WebSocketMessages.ToBytes(w => request.WriteTo(w));
    }
}
