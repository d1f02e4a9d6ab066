using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Relay.Middleware.Configuration;
using StackExchange.Redis;

namespace Relay.Middleware.State;

/// <summary>
/// The one connection (multiplexer) of this instance to the shared Redis of <c>Relay:State:Redis</c>. It connects in
/// the background and reconnects by itself (<c>AbortOnConnectFail=false</c>); while it is down, commands fail at once
/// (<see cref="BacklogPolicy.FailFast"/>) rather than queue, so a request that needs Redis gets its 503 without waiting
/// and a request that does not is never slowed by it.
/// </summary>
internal sealed partial class RedisState : IAsyncDisposable
{
    private readonly Task<ConnectionMultiplexer> _connect;
    private readonly ConfigurationOptions _configuration;
    private readonly ILogger _logger;

    public RedisState(IOptions<RelayOptions> options, ILogger<RedisState> logger)
    {
        _logger = logger;
        var configuration = ConfigurationOptions.Parse(options.Value.State.Redis!);
        configuration.AbortOnConnectFail = false;
        configuration.BacklogPolicy = BacklogPolicy.FailFast;
        // Back within a second or two of Redis's return, not the library's default of up to a minute of back-off.
        configuration.ReconnectRetryPolicy = new ExponentialRetry(deltaBackOffMilliseconds: 200, maxDeltaBackOffMilliseconds: 2000);
        _configuration = configuration;
        _connect = ConnectAsync(configuration);
    }

    /// <summary>The multiplexer, once the first connection attempt has run; otherwise <see cref="StateStoreUnavailableException"/>.</summary>
    public ConnectionMultiplexer Connection
        => _connect.IsCompletedSuccessfully ? _connect.Result : throw new StateStoreUnavailableException("Relay has not connected to Redis yet.");

    public IDatabase Database => Connection.GetDatabase();

    /// <summary>Waits for the first connection attempt (at most the connect timeout), so an instance starts connected when Redis is up.</summary>
    public Task FirstAttempt => _connect;

    /// <summary>Runs one Redis operation, turning the client's connection failures into <see cref="StateStoreUnavailableException"/>.</summary>
    public async Task<T> RunAsync<T, TState>(Func<IDatabase, TState, Task<T>> operation, TState state)
    {
        try
        {
            return await operation(Database, state).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisConnectionException or RedisTimeoutException or ObjectDisposedException)
        {
            Log.Unavailable(_logger, ex.GetType().Name);
            throw new StateStoreUnavailableException("Redis is unavailable.", ex);
        }
    }

    /// <summary>
    /// A multiplexer of its own, for one loop of blocking commands (the shared one must never block): same endpoints,
    /// same reconnect rules, its own client name. The caller disposes it.
    /// </summary>
    public Task<ConnectionMultiplexer> ConnectDedicatedAsync(string clientName)
    {
        var configuration = _configuration.Clone();
        configuration.ClientName = clientName;
        return ConnectionMultiplexer.ConnectAsync(configuration);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await (await _connect.ConfigureAwait(false)).DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException)
        {
        }
    }

    private async Task<ConnectionMultiplexer> ConnectAsync(ConfigurationOptions configuration)
    {
        var connection = await ConnectionMultiplexer.ConnectAsync(configuration).ConfigureAwait(false);
        connection.ConnectionFailed += (_, e) => Log.ConnectionFailed(_logger, e.EndPoint?.ToString(), e.FailureType.ToString());
        connection.ConnectionRestored += (_, e) => Log.ConnectionRestored(_logger, e.EndPoint?.ToString());
        if (!connection.IsConnected)
        {
            Log.ConnectionFailed(_logger, string.Join(", ", configuration.EndPoints), "initial connect");
        }

        return connection;
    }

    private static partial class Log
    {
        [LoggerMessage(1501, LogLevel.Warning, "The connection to Redis at {EndPoint} failed ({Failure}); requests that need shared state get 503 until it is back.", EventName = "StateStoreConnectionFailed")]
        public static partial void ConnectionFailed(ILogger logger, string? endPoint, string failure);

        [LoggerMessage(1502, LogLevel.Information, "The connection to Redis at {EndPoint} is back.", EventName = "StateStoreConnectionRestored")]
        public static partial void ConnectionRestored(ILogger logger, string? endPoint);

        [LoggerMessage(1503, LogLevel.Debug, "A Redis operation failed: {Failure}.", EventName = "StateStoreUnavailable")]
        public static partial void Unavailable(ILogger logger, string failure);
    }
}
