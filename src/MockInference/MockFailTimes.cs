using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace MockInference;

/// <summary>
/// <c>x-mock-fail-times: N</c> with <c>x-mock-fail-key: K</c>: the first N requests with key K get
/// <c>x-mock-status</c>, later ones are answered normally, so a test can show "two 503s, then success" through a
/// retrying proxy. Every request with a key is counted; <c>GET /mock/fail-keys/{key}</c> returns
/// <c>{"requests":n}</c>, the upstream's own count of attempts.
/// </summary>
internal sealed class MockFailTimes
{
    private readonly ConcurrentDictionary<string, StrongBox<int>> _counts = new(StringComparer.Ordinal);

    /// <summary>The status to inject for this request: <paramref name="status"/>, or null once its key has failed N times.</summary>
    public static int? Apply(HttpContext context, int? status)
    {
        var headers = context.Request.Headers;
        var key = headers["x-mock-fail-key"].ToString();
        if (key.Length == 0)
        {
            return status;
        }

        var count = Interlocked.Increment(ref context.RequestServices.GetRequiredService<MockFailTimes>()._counts.GetOrAdd(key, static _ => new StrongBox<int>()).Value);
        return int.TryParse(headers["x-mock-fail-times"], out var times) && count > times ? null : status;
    }

    /// <summary><c>GET /mock/fail-keys/{key}</c>: how many requests carried the key.</summary>
    public static Task GetCountAsync(HttpContext context)
    {
        var key = (string)context.Request.RouteValues["key"]!;
        var count = context.RequestServices.GetRequiredService<MockFailTimes>()._counts.TryGetValue(key, out var box) ? Volatile.Read(ref box.Value) : 0;
        return context.Response.WriteAsJsonAsync(new Dictionary<string, int> { ["requests"] = count });
    }
}
