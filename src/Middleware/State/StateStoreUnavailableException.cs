namespace Relay.Middleware.State;

/// <summary>
/// The shared state store (Redis) cannot be reached. Relay answers a request that needs it with 503
/// <c>state_store_unavailable</c> and a <c>Retry-After</c>; requests that do not need it go on. A custom
/// <see cref="Auth.ITicketStore"/> throws it for the same answer.
/// </summary>
public sealed class StateStoreUnavailableException : Exception
{
    /// <summary>Creates the exception.</summary>
    public StateStoreUnavailableException()
        : base("The shared state store is unavailable.")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public StateStoreUnavailableException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with the store client's own failure.</summary>
    public StateStoreUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
