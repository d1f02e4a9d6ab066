namespace Relay.Tests.Shared;

/// <summary>A fact that is skipped, with a clear reason, when the shared test data is absent (xunit 2 has no dynamic skip).</summary>
public sealed class TestDataFactAttribute : FactAttribute
{
    public TestDataFactAttribute()
    {
        if (TestDataLocator.Root is null)
        {
            Skip = TestDataLocator.MissingReason;
        }
    }
}

/// <summary>A theory that is skipped, with a clear reason, when the shared test data is absent.</summary>
public sealed class TestDataTheoryAttribute : TheoryAttribute
{
    public TestDataTheoryAttribute()
    {
        if (TestDataLocator.Root is null)
        {
            Skip = TestDataLocator.MissingReason;
        }
    }
}
