using Osprey.Core;

namespace Osprey.Engine.Graph;

/// <summary>An engine graph is malformed, or a model cannot be traced into one.</summary>
public sealed class GraphException : OspreyException
{
    public GraphException() { }
    public GraphException(string message) : base(message) { }
    public GraphException(string message, Exception inner) : base(message, inner) { }
}
