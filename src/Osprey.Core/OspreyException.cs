namespace Osprey.Core;

/// <summary>Base of every error Osprey raises on purpose.</summary>
public class OspreyException : Exception
{
    public OspreyException() { }
    public OspreyException(string message) : base(message) { }
    public OspreyException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>An op was called with shapes, dtypes, devices or arguments it cannot take.</summary>
public sealed class OpArgumentException : OspreyException
{
    public OpArgumentException() { }
    public OpArgumentException(string message) : base(message) { }
    public OpArgumentException(string message, Exception inner) : base(message, inner) { }

    /// <summary>Throws "op: problem" from a cold path.</summary>
    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    public static void Throw(string op, string problem) => throw new OpArgumentException($"{op}: {problem}");
}

/// <summary>A device ran out of memory.</summary>
public sealed class OutOfDeviceMemoryException : OspreyException
{
    public OutOfDeviceMemoryException() { }
    public OutOfDeviceMemoryException(string message) : base(message) { }
    public OutOfDeviceMemoryException(string message, Exception inner) : base(message, inner) { }
}
