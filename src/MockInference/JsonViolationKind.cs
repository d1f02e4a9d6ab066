namespace MockInference;

/// <summary>How a structured reply goes off-schema (<c>x-mock-json-violation</c>), as a drifting model does.</summary>
internal enum JsonViolationKind
{
    /// <summary>A bare word where a value belongs (<c>undefined</c>): the text stops being JSON.</summary>
    Syntax,

    /// <summary>A value of another type than the schema's (a number for a string, a string for a number, ...).</summary>
    Type,

    /// <summary>A property that the object's schema does not list (<c>additionalProperties: false</c>).</summary>
    ExtraProperty,

    /// <summary>A string outside the value's <c>enum</c>.</summary>
    Enum,

    /// <summary>A string longer than the value's <c>maxLength</c>.</summary>
    MaxLength,
}
