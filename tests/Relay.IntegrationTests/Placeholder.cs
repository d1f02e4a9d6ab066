namespace Relay.IntegrationTests; public class Placeholder { [Fact] public void Builds() { } }
