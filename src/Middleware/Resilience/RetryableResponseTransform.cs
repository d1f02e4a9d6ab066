using Yarp.ReverseProxy.Model;
using Yarp.ReverseProxy.Transforms;

namespace Relay.Middleware.Resilience;

/// <summary>
/// Holds back an upstream answer that will be retried (429 or 503 with <c>Retry-After</c>, ...): YARP has copied
/// its status and headers to the response, which has not started, and is told not to copy its body, so the retry
/// middleware can clear the response and try again. Runs before every other response transform; an answer that is
/// not retried passes through untouched.
/// </summary>
internal sealed class RetryableResponseTransform : ResponseTransform
{
    private readonly TimeProvider _time;

    public RetryableResponseTransform(TimeProvider time) => _time = time;

    public override ValueTask ApplyAsync(ResponseTransformContext context)
    {
        var attempts = context.HttpContext.Features.Get<UpstreamAttemptsFeature>();
        if (attempts is not null && context.HttpContext.Features.Get<IReverseProxyFeature>()?.ProxiedDestination is { } destination)
        {
            // Named now: an event stream's StreamEnded record is written before the attempt returns.
            attempts.SetDestination(destination.DestinationId);
        }

        if (context.ProxyResponse is not { } response || attempts is not { MayRetry: true } || context.HttpContext.Response.HasStarted)
        {
            return ValueTask.CompletedTask;
        }

        var status = (int)response.StatusCode;
        var retryAfter = RetryRules.RetryAfter(response, _time.GetUtcNow());
        if (RetryRules.ShouldRetryStatus(status, retryAfter, attempts.Options, attempts.RemainingBudget()))
        {
            attempts.Held = new UpstreamAttemptsFeature.HeldResponse(status, retryAfter);
            context.SuppressResponseBody = true;
        }

        return ValueTask.CompletedTask;
    }
}
