using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json;
using MockInference;

namespace Relay.LoadBench;

/// <summary>What a stream's client does with the response.</summary>
internal enum Behaviour
{
    /// <summary>Read to the end; the content is checked.</summary>
    ReadAll,

    /// <summary>Abort (dispose the response) once <see cref="StreamSpec.AbortAfterEvents"/> content events arrived.</summary>
    Abort,

    /// <summary>After the first content event keep a read pending (an open, idle stream) until told to stop.</summary>
    HoldOpen,

    /// <summary>After the first content event stop reading (a stalled client) until told to stop.</summary>
    StopReading,
}

/// <summary>One stream's request: the MockInference knobs and what the client does.</summary>
internal sealed record StreamSpec(int Seed, int MaxTokens, int TokensPerSecond, int TtftMs, Behaviour Behaviour)
{
    public int AbortAfterEvents { get; init; }

    public int? StallAfterTokens { get; init; }

    public int StallMs { get; init; }

    public TimeSpan StartDelay { get; init; }
}

/// <summary>What one stream's client saw. Times are <see cref="MonotonicClock"/> microseconds.</summary>
internal sealed class StreamResult
{
    public string? Error { get; set; }

    public string? RequestId { get; set; }

    public int Events { get; set; }

    public int ContentEvents { get; set; }

    public long Bytes { get; set; }

    public long RequestStartUs { get; set; }

    public long FirstContentUs { get; set; }

    public long AbortUs { get; set; }

    public int? CompletionTokens { get; set; }

    public bool Done { get; set; }

    /// <summary>Relay's <c>Relay-Stream-Id</c> response header: set when the stream is resumable.</summary>
    public string? StreamId { get; set; }

    /// <summary>Events with a <c>data:</c> line but no <c>id:</c> line (every event of a resumable stream has one).</summary>
    public int EventsWithoutId { get; set; }

    /// <summary>Receive time minus <c>mock_emitted_us</c>, one per event that carries it.</summary>
    public List<int> LatenciesUs { get; } = [];

    public ArrayBufferWriter<byte> Content { get; } = new(256);
}

/// <summary>
/// The load generator's client: one <see cref="SocketsHttpHandler"/> for all streams of a scenario (one process,
/// many streams). The SSE body is parsed from bytes as it arrives; every event completed by one socket read is
/// stamped with the time that read returned.
/// </summary>
internal sealed class StreamClient : IDisposable
{
    private static readonly ConcurrentDictionary<string, byte[]> s_bodies = new();
    private readonly HttpClient _http;
    private readonly string _url;
    private readonly Version _version;
    private readonly Target _target;

    public StreamClient(Target target, string baseUrl, bool http2)
    {
        _target = target;
        _url = baseUrl.TrimEnd('/') + "/v1/chat/completions";
        _version = http2 ? HttpVersion.Version20 : HttpVersion.Version11;
        _http = new HttpClient(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            MaxConnectionsPerServer = int.MaxValue,
            EnableMultipleHttp2Connections = true,
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            ConnectTimeout = TimeSpan.FromSeconds(60),
            // A client that disposes an unfinished HTTP/1.1 response must close the connection at once, as a
            // browser or SDK abort does; by default SocketsHttpHandler first tries to drain it for up to 2 s.
            MaxResponseDrainSize = 0,
        })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
    }

    /// <summary>Runs one stream. <paramref name="opened"/> is called once at its first content event.</summary>
    public async Task<StreamResult> RunAsync(StreamSpec spec, Action? opened, CancellationToken stop)
    {
        var result = new StreamResult();
        if (spec.StartDelay > TimeSpan.Zero)
        {
            await Task.Delay(spec.StartDelay, CancellationToken.None);
        }

        using var request = new HttpRequestMessage(HttpMethod.Post, _url)
        {
            Version = _version,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new ByteArrayContent(Body(spec.Seed, spec.MaxTokens)),
        };
        request.Content.Headers.ContentType = new("application/json");
        request.Headers.TryAddWithoutValidation("x-mock-tokens-per-second", spec.TokensPerSecond.ToString(System.Globalization.CultureInfo.InvariantCulture));
        request.Headers.TryAddWithoutValidation("x-mock-ttft-ms", spec.TtftMs.ToString(System.Globalization.CultureInfo.InvariantCulture));
        request.Headers.TryAddWithoutValidation("x-mock-seed", spec.Seed.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (spec.StallAfterTokens is int stallAfter)
        {
            request.Headers.TryAddWithoutValidation("x-mock-stall-after-tokens", stallAfter.ToString(System.Globalization.CultureInfo.InvariantCulture));
            request.Headers.TryAddWithoutValidation("x-mock-stall-ms", spec.StallMs.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        foreach (var (name, value) in _target.Headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        byte[]? buffer = null;
        HttpResponseMessage? response = null;
        try
        {
            result.RequestStartUs = MonotonicClock.NowMicroseconds();
            response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, CancellationToken.None);
            if (response.Headers.TryGetValues("x-mock-request-id", out var ids))
            {
                result.RequestId = ids.FirstOrDefault();
            }

            if (response.Headers.TryGetValues("Relay-Stream-Id", out var streamIds))
            {
                result.StreamId = streamIds.FirstOrDefault();
            }

            if (response.StatusCode != HttpStatusCode.OK)
            {
                var text = await response.Content.ReadAsStringAsync(CancellationToken.None);
                result.Error = $"HTTP {(int)response.StatusCode}: {text[..Math.Min(200, text.Length)]}";
                return result;
            }

            var body = await response.Content.ReadAsStreamAsync(CancellationToken.None);
            buffer = ArrayPool<byte>.Shared.Rent(8192);
            var filled = 0;
            var signalled = false;
            while (true)
            {
                if (filled == buffer.Length)
                {
                    var larger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                    buffer.AsSpan(0, filled).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }

                int read;
                try
                {
                    read = await body.ReadAsync(buffer.AsMemory(filled), spec.Behaviour == Behaviour.HoldOpen ? stop : CancellationToken.None);
                }
                catch (OperationCanceledException) when (spec.Behaviour == Behaviour.HoldOpen && stop.IsCancellationRequested)
                {
                    return result;
                }

                var now = MonotonicClock.NowMicroseconds();
                if (read == 0)
                {
                    break;
                }

                result.Bytes += read;
                filled += read;
                var consumed = ParseEvents(buffer.AsSpan(0, filled), now, result);
                buffer.AsSpan(consumed, filled - consumed).CopyTo(buffer);
                filled -= consumed;
                if (result.Error is not null)
                {
                    return result;
                }

                if (result.ContentEvents > 0 && !signalled)
                {
                    signalled = true;
                    opened?.Invoke();
                }

                switch (spec.Behaviour)
                {
                    case Behaviour.Abort when result.ContentEvents >= spec.AbortAfterEvents:
                        result.AbortUs = MonotonicClock.NowMicroseconds();
                        response.Dispose();
                        return result;
                    case Behaviour.StopReading when signalled:
                        try
                        {
                            await Task.Delay(Timeout.Infinite, stop);
                        }
                        catch (OperationCanceledException)
                        {
                        }

                        return result;
                }
            }

            if (spec.Behaviour == Behaviour.ReadAll && !result.Done)
            {
                result.Error = "the stream ended without [DONE]";
            }
            else if (_target.Resumable && (result.StreamId is null || result.EventsWithoutId > 0))
            {
                // Relay serves a resumable request as a plain stream when Redis is not connected: not what is measured.
                result.Error = $"the stream is not resumable (Relay-Stream-Id header {(result.StreamId is null ? "missing" : "present")}, {result.EventsWithoutId} of {result.Events + (result.Done ? 1 : 0)} events without an id)";
            }
            else if (spec.Behaviour != Behaviour.ReadAll)
            {
                result.Error = $"the stream ended before the client's {spec.Behaviour}";
            }
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or JsonException or InvalidOperationException)
        {
            result.Error ??= $"{ex.GetType().Name}: {ex.Message}";
        }
        finally
        {
            response?.Dispose();
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }

        return result;
    }

    /// <summary>Parses every complete event in <paramref name="data"/>; returns how many bytes were consumed.</summary>
    internal static int ParseEvents(ReadOnlySpan<byte> data, long nowUs, StreamResult result)
    {
        var consumed = 0;
        while (true)
        {
            var end = data[consumed..].IndexOf("\n\n"u8);
            if (end < 0)
            {
                return consumed;
            }

            var block = data.Slice(consumed, end);
            consumed += end + 2;
            var (hasId, hasData) = (false, false);
            while (!block.IsEmpty)
            {
                var newline = block.IndexOf((byte)'\n');
                var line = newline < 0 ? block : block[..newline];
                block = newline < 0 ? default : block[(newline + 1)..];
                hasId |= line.StartsWith("id:"u8);
                if (line.StartsWith("data:"u8))
                {
                    hasData = true;
                    var payload = line[5..];
                    if (!payload.IsEmpty && payload[0] == (byte)' ')
                    {
                        payload = payload[1..];
                    }

                    ParseData(payload.TrimEnd((byte)'\r'), nowUs, result);
                }
            }

            if (hasData && !hasId)
            {
                result.EventsWithoutId++;
            }
        }
    }

    private static void ParseData(ReadOnlySpan<byte> payload, long nowUs, StreamResult result)
    {
        if (payload.SequenceEqual("[DONE]"u8))
        {
            result.Done = true;
            return;
        }

        result.Events++;
        var reader = new Utf8JsonReader(payload);
        var content = false;
        while (reader.Read())
        {
            if (reader.TokenType != JsonTokenType.PropertyName)
            {
                continue;
            }

            if (reader.ValueTextEquals("content"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.String)
                {
                    var span = result.Content.GetSpan(reader.HasValueSequence ? checked((int)reader.ValueSequence.Length) : reader.ValueSpan.Length);
                    var written = reader.CopyString(span);
                    result.Content.Advance(written);
                    content |= written > 0;
                }
            }
            else if (reader.ValueTextEquals("mock_emitted_us"u8))
            {
                reader.Read();
                result.LatenciesUs.Add(checked((int)(nowUs - reader.GetInt64())));
            }
            else if (reader.ValueTextEquals("completion_tokens"u8))
            {
                reader.Read();
                result.CompletionTokens = reader.GetInt32();
            }
            else if (reader.CurrentDepth == 0 && reader.ValueTextEquals("error"u8))
            {
                result.Error = "error event: " + Encoding.UTF8.GetString(payload[..Math.Min(300, payload.Length)]);
                return;
            }
        }

        if (content)
        {
            result.ContentEvents++;
            if (result.FirstContentUs == 0)
            {
                result.FirstContentUs = nowUs;
            }
        }
    }

    private byte[] Body(int seed, int maxTokens) => Body(_target, seed, maxTokens);

    /// <summary>The request body of one stream (also h2load's, written to a file).</summary>
    public static byte[] Body(Target target, int seed, int maxTokens) => s_bodies.GetOrAdd($"{seed}/{maxTokens}/{target.StreamOptionsExtra}", _ => Encoding.UTF8.GetBytes(
        $$$"""{"model":"mock","messages":[{"role":"user","content":"Benchmark prompt {{{seed}}}"}],"stream":true,"max_tokens":{{{maxTokens}}},"stream_options":{"include_usage":true{{{target.StreamOptionsExtra}}}}}"""));

    public void Dispose() => _http.Dispose();
}
