using System.Reflection;
using Microsoft.Extensions.Logging;

namespace Relay.Middleware.Tests.Logging;

/// <summary>
/// Every <c>[LoggerMessage]</c> of the package has its own event id and name, so a log query or alert on an id finds
/// one event. Ranges by capability: 1-99 streaming, 100 accounting, 200 cancellation, 300 proxy, 400 auth, 410
/// tickets, 500 WebSockets, 600 hosting, 1400 resilience.
/// </summary>
public sealed class LogEventIdTests
{
    private static readonly (MethodInfo Method, LoggerMessageAttribute Attribute)[] Events = typeof(Relay.Middleware.Configuration.RelayOptions).Assembly
        .GetTypes()
        .SelectMany(static t => t.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.Instance | BindingFlags.DeclaredOnly))
        .Select(static m => (Method: m, Attribute: m.GetCustomAttribute<LoggerMessageAttribute>()!))
        .Where(static e => e.Attribute is not null)
        .ToArray();

    [Fact]
    public void EveryLoggerMessage_HasAnEventIdNoOtherHas()
    {
        Assert.True(Events.Length > 10, "the reflection found the package's log events");
        var duplicates = Events.GroupBy(static e => e.Attribute.EventId).Where(static g => g.Count() > 1)
            .Select(static g => $"{g.Key}: {string.Join(", ", g.Select(static e => $"{e.Method.DeclaringType!.FullName}.{e.Method.Name}"))}");
        Assert.Empty(duplicates);
    }

    [Fact]
    public void EveryLoggerMessage_HasAnEventNameNoOtherHas()
    {
        Assert.All(Events, static e => Assert.False(string.IsNullOrEmpty(e.Attribute.EventName), $"{e.Method.DeclaringType!.FullName}.{e.Method.Name} has no EventName"));
        Assert.Empty(Events.GroupBy(static e => e.Attribute.EventName).Where(static g => g.Count() > 1).Select(static g => g.Key));
    }
}
