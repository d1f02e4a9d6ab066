using Microsoft.Extensions.Options;
using Relay.Middleware.Configuration;

namespace Relay.Middleware.Hosting;

/// <summary>
/// Refuses settings that cannot work without a host service the app kept for itself
/// (<see cref="RelayHostIntegration"/>), rather than letting them do nothing.
/// </summary>
internal sealed class HostIntegrationValidator(RelayHostIntegration integration) : IValidateOptions<RelayOptions>
{
    public ValidateOptionsResult Validate(string? name, RelayOptions options)
    {
        var failures = new List<string>();
        if (!integration.HasFlag(RelayHostIntegration.CorsPolicyProvider) && options.Cors.AllowedOrigins.Length > 0)
        {
            failures.Add("Relay:Cors:AllowedOrigins needs Relay's CORS policy provider: AddRelay was called without RelayHostIntegration.CorsPolicyProvider. Configure CORS in the app's own provider instead, or include it.");
        }

        if (!integration.HasFlag(RelayHostIntegration.QueryTokenRedactingServer) && options.Auth.QueryToken)
        {
            failures.Add("Relay:Auth:QueryToken needs the query-token redacting server (otherwise the host logs the token in the request line): AddRelay was called without RelayHostIntegration.QueryTokenRedactingServer.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
