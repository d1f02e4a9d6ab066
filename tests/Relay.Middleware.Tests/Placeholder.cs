namespace Relay.Middleware.Tests; public class Placeholder { [Fact] public void Builds() { } }
