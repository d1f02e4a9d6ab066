using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Relay.Middleware.Auth;
using Relay.Middleware.Configuration;
using Relay.Middleware.Requests;
using Relay.Middleware.State;
using Yarp.ReverseProxy.Model;

namespace Relay.Middleware.Resume;

/// <summary>
/// Resumable streams, the producing side: on a route with <c>Resume:Enabled</c> (and Redis configured), installs the body that
/// numbers and tees events (<see cref="ResumableResponseBody"/>) and the lifetime that lets a resumable stream outlive
/// its client (<see cref="DetachableRequestLifetime"/>). Both pass everything through until the response turns out to
/// be a resumable stream: a request with <c>stream_options.resumable: true</c> answered with a 200 event stream.
/// </summary>
internal sealed class ResumableStreamMiddleware(RequestDelegate next, RouteSettingsResolver resolver, IOptions<RelayOptions> options, IServiceProvider services,
    TimeProvider time, ILogger<ResumableStream> logger)
{
    private readonly bool _redis = !string.IsNullOrWhiteSpace(options.Value.State.Redis);

    public Task InvokeAsync(HttpContext context)
    {
        if (!_redis || context.WebSockets.IsWebSocketRequest || !HttpMethods.IsPost(context.Request.Method)
            || context.Features.Get<IHttpRequestLifetimeFeature>() is not { } clientLifetime
            || context.Features.Get<IHttpResponseBodyFeature>() is not { } body)
        {
            return next(context);
        }

        var settings = resolver.Get(context.Features.Get<IReverseProxyFeature>()?.Route.Config);
        return settings.Resume.Enabled ? InvokeCoreAsync(context, settings.Resume, clientLifetime, body) : next(context);
    }

    private async Task InvokeCoreAsync(HttpContext context, ResumeOptions resume, IHttpRequestLifetimeFeature clientLifetime, IHttpResponseBodyFeature body)
    {
        var startedAt = time.GetTimestamp();
        var redis = (RedisState)services.GetService(typeof(RedisState))!;
        var streams = (ResumableStreams)services.GetService(typeof(ResumableStreams))!;
        var cap = ResponseCap.For(resume.MaxResponseSeconds, context.Request, time, startedAt);
        ResumableStream? stream = null;
        var decided = false;
        ResumableStream? Activate()
        {
            if (decided)
            {
                return stream;
            }

            decided = true;
            var response = context.Response;
            if (context.Features.Get<RelayRequestFeature>() is not { Resumable: true, IsChatCompletion: true, Stream: true } request
                || response.StatusCode != StatusCodes.Status200OK
                || response.ContentType?.StartsWith("text/event-stream", StringComparison.OrdinalIgnoreCase) != true
                || !IsConnected(redis))
            {
                return null;
            }

            stream = new ResumableStream(ResumeKeys.NewStreamId(), redis, resume, request.Lifetime, time, logger);
            var credential = context.Features.Get<RelayCredentialFeature>()?.Credential;
            var ticket = context.Features.Get<RedeemedTicketFeature>()?.Ticket.Id;
            stream.Start(streams.InstanceId, ResumeKeys.Identity(credential?.Token), ticket is null ? null : ResumeKeys.TicketIdentity(ticket));
            streams.Add(stream);

            // A client that stops reading without going away: let it go (its connection is aborted, the pending
            // write ends) and go on generating for the resume, as if it had disconnected.
            var resumable = stream;
            request.Lifetime.WriteStallHandler = () =>
            {
                resumable.Detach();
                clientLifetime.Abort();
                return true;
            };
            if (!response.HasStarted)
            {
                response.Headers[ResumeKeys.HeaderName] = stream.Id;
                if (cap is not null)
                {
                    ResponseCap.PrepareHeaders(response);
                }
            }

            return stream;
        }

        var tee = new ResumableResponseBody(body, Activate, cap);
        using var lifetime = new DetachableRequestLifetime(clientLifetime, () => decided ? stream : null);
        context.Features.Set<IHttpResponseBodyFeature>(tee);
        context.Features.Set<IHttpRequestLifetimeFeature>(lifetime);
        // The header must be there before the headers go out, whichever comes first: the first write or the start.
        context.Response.OnStarting(static s => { ((Func<ResumableStream?>)s)(); return Task.CompletedTask; }, (Func<ResumableStream?>)Activate);
        try
        {
            await next(context);
        }
        finally
        {
            context.Features.Set(body);
            context.Features.Set(clientLifetime);
            if (stream is not null)
            {
                await tee.StopCapAsync();
                await tee.WriteFinalAsync(stream);
                stream.End();
                streams.Remove(stream);
                stream.Dispose();
            }
        }
    }

    private static bool IsConnected(RedisState redis)
    {
        try
        {
            return redis.Connection.IsConnected;
        }
        catch (StateStoreUnavailableException)
        {
            return false;
        }
    }
}
