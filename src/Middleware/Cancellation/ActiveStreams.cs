using System.Collections.Concurrent;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Relay.Middleware.Configuration;

namespace Relay.Middleware.Cancellation;

/// <summary>
/// The requests in flight, for graceful shutdown: on SIGTERM Relay stops accepting new requests (503), lets the
/// streams in flight finish for <see cref="ShutdownOptions.DrainSeconds"/>, then ends the rest with a final
/// <c>relay_shutdown</c> error event and cancels their upstreams. No stream is cut silently.
/// </summary>
/// <remarks>
/// The drain runs in <see cref="IHostedLifecycleService.StoppingAsync"/>, which the host runs for every service
/// before any <see cref="IHostedService.StopAsync"/>: WebApplication starts the web server last and so stops it
/// first, so a drain in StopAsync would run only after Kestrel had already waited out (and cut) the streams.
/// </remarks>
internal sealed partial class ActiveStreams : IHostedLifecycleService
{
    private readonly ConcurrentDictionary<StreamLifetime, byte> _streams = new();
    private readonly IOptionsMonitor<RelayOptions> _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly TaskCompletionSource _empty = NewSignal();
    private readonly CancellationTokenSource _stopping = new();
    private volatile bool _draining;

    /// <summary>Creates the registry.</summary>
    public ActiveStreams(IOptionsMonitor<RelayOptions> options, TimeProvider time, ILogger<ActiveStreams> logger)
    {
        _options = options;
        _time = time;
        _logger = logger;
    }

    /// <summary>Whether Relay is shutting down and refuses new requests.</summary>
    public bool Draining => _draining;

    /// <summary>
    /// Fires when shutdown begins (before the drain): long-lived sessions (WebSocket bridge) end what they can
    /// end at once and close, while their responses in flight drain like any stream.
    /// </summary>
    public CancellationToken Stopping => _stopping.Token;

    /// <summary>The number of requests in flight.</summary>
    public int Count => _streams.Count;

    internal void Add(StreamLifetime lifetime) => _streams.TryAdd(lifetime, 0);

    internal void Remove(StreamLifetime lifetime)
    {
        _streams.TryRemove(lifetime, out _);
        if (_draining && _streams.IsEmpty)
        {
            _empty.TrySetResult();
        }
    }

    /// <inheritdoc />
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc />
    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc />
    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc />
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc />
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Refuses new requests, drains the ones in flight, then ends the rest (before the web server stops).</summary>
    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        _draining = true;
        await _stopping.CancelAsync();
        if (_streams.IsEmpty)
        {
            return;
        }

        var drain = TimeSpan.FromSeconds(_options.CurrentValue.Shutdown.DrainSeconds);
        Log.Draining(_logger, _streams.Count, drain.TotalSeconds);
        if (await WaitEmptyAsync(drain, cancellationToken))
        {
            return;
        }

        var ended = 0;
        foreach (var lifetime in _streams.Keys)
        {
            if (lifetime.Cancel(StreamEndReason.RelayShutdown))
            {
                ended++;
            }
        }

        Log.EndedAtShutdown(_logger, ended);

        // Give the ended streams a moment to write their final error event.
        await WaitEmptyAsync(TimeSpan.FromSeconds(5), cancellationToken);
    }

    private async Task<bool> WaitEmptyAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (_streams.IsEmpty)
        {
            return true;
        }

        try
        {
            await _empty.Task.WaitAsync(timeout, _time, cancellationToken);
            return true;
        }
        catch (TimeoutException)
        {
            return _streams.IsEmpty;
        }
        catch (OperationCanceledException)
        {
            return _streams.IsEmpty;
        }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static partial class Log
    {
        [LoggerMessage(200, LogLevel.Information, "Shutting down: draining {Count} requests in flight for up to {DrainSeconds} s.", EventName = "Draining")]
        public static partial void Draining(ILogger logger, int count, double drainSeconds);

        [LoggerMessage(201, LogLevel.Warning, "Shutdown: ended {Count} streams still in flight with a relay_shutdown error event.", EventName = "EndedAtShutdown")]
        public static partial void EndedAtShutdown(ILogger logger, int count);
    }
}
