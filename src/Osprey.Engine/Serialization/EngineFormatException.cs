using Osprey.Core;

namespace Osprey.Engine.Serialization;

/// <summary>An engine file is damaged, truncated, or built for another device, Osprey version or kernel set.</summary>
public sealed class EngineFormatException : OspreyException
{
    public EngineFormatException() { }
    public EngineFormatException(string message) : base(message) { }
    public EngineFormatException(string message, Exception inner) : base(message, inner) { }
}
