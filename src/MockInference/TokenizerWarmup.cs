using Microsoft.Extensions.Hosting;

namespace MockInference;

/// <summary>
/// Loads the vocabulary in the background when the host starts, so the first request's time to first token
/// is not the hundreds of milliseconds it takes to load o200k_base.
/// </summary>
internal sealed class TokenizerWarmup(MockTokenizer tokenizer) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        _ = Task.Run(tokenizer.WarmUp, CancellationToken.None);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
