namespace Osprey.Engine.Graph;

/// <summary>One operation: kind, typed attributes, input values, output values (usually one).</summary>
public sealed class Node
{
    internal Node(OpKind kind, NodeAttrs attrs, List<Value> inputs, List<Value> outputs, string name)
    {
        Kind = kind;
        Attrs = attrs;
        Inputs = inputs;
        Outputs = outputs;
        Name = name;
    }

    public OpKind Kind { get; }
    public NodeAttrs Attrs { get; internal set; }
    public List<Value> Inputs { get; }
    public List<Value> Outputs { get; }
    public string Name { get; set; }

    /// <summary>
    /// The backend's algorithm for this node, measured when the engine was built for a device (convolutions on CUDA:
    /// the cuDNN plan, see CudaBackend.ConvAlgorithm); stored in the engine file and used at load without measuring. Null: none.
    /// </summary>
    public string? Algorithm { get; set; }

    public Value Output => Outputs[0];

    /// <summary>The attributes as a given record type (throws naming the node if they are not).</summary>
    public T AttrsAs<T>() where T : NodeAttrs =>
        Attrs as T ?? throw new GraphException($"node {Name} ({Kind}) has {Attrs.GetType().Name}, expected {typeof(T).Name}");

    public override string ToString() => $"{Name} = {Kind}";
}
