namespace Relay.Tests.Shared;

/// <summary>
/// How long a test waits for a condition before it fails. Tests wait for the condition itself (a log record, the
/// mock's record, an event), never for a time; the deadline is only there so a real failure ends the test, and is
/// generous enough that a loaded 2-core machine running test classes in parallel never reaches it.
/// </summary>
public static class Deadline
{
    /// <summary>The default wait for a condition that should hold within milliseconds on an idle machine.</summary>
    public static readonly TimeSpan Default = TimeSpan.FromSeconds(60);
}
