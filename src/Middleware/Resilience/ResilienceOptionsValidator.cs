using Microsoft.Extensions.Options;
using Relay.Middleware.Configuration;

namespace Relay.Middleware.Resilience;

/// <summary>Validates <see cref="RelayOptions.Resilience"/> at start-up.</summary>
internal sealed class ResilienceOptionsValidator : IValidateOptions<RelayOptions>
{
    public ValidateOptionsResult Validate(string? name, RelayOptions options)
    {
        var r = options.Resilience;
        var failures = new List<string>();
        if (r.MaxAttempts is < 1 or > 10)
        {
            failures.Add("Relay:Resilience:MaxAttempts must be between 1 and 10.");
        }

        if (r.MaxRetryAfterSeconds < 0 || double.IsNaN(r.MaxRetryAfterSeconds))
        {
            failures.Add("Relay:Resilience:MaxRetryAfterSeconds must be zero or positive.");
        }

        if (r.BaseDelayMs < 0)
        {
            failures.Add("Relay:Resilience:BaseDelayMs must be zero or positive.");
        }

        if (r.BreakerFailures < 0)
        {
            failures.Add("Relay:Resilience:BreakerFailures must be zero (off) or positive.");
        }

        if (r.BreakSeconds <= 0 || double.IsNaN(r.BreakSeconds))
        {
            failures.Add("Relay:Resilience:BreakSeconds must be positive.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
