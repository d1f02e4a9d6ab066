namespace MockInference.Tests; public class Placeholder { [Fact] public void Builds() { } }
