using Osprey.Core.Tensors;

namespace Osprey.Engine.Graph;

/// <summary>
/// The engine IR: values (inputs, constants, activations), nodes in execution order, named outputs.
/// Passes edit it in place through the methods here, then <see cref="Compact"/> renumbers it.
/// </summary>
public sealed class ComputeGraph
{
    private int _nextId;

    public List<Value> Inputs { get; } = [];
    public List<Value> Constants { get; } = [];
    public List<Node> Nodes { get; } = [];
    public List<Value> Outputs { get; } = [];

    /// <summary>Facts the runtime needs beside the tensors (architecture, classes, level grids...), ordered by key.</summary>
    public SortedDictionary<string, string> Metadata { get; } = new(StringComparer.Ordinal);

    public Value AddInput(string name, Shape shape, DType dtype, MemoryFormat format)
    {
        var v = new Value(_nextId++, ValueKind.Input, shape, dtype, format, name);
        Inputs.Add(v);
        return v;
    }

    public Value AddConstant(string name, Shape shape, DType dtype, MemoryFormat format, byte[] data)
    {
        ArgumentNullException.ThrowIfNull(data);
        var v = new Value(_nextId++, ValueKind.Constant, shape, dtype, format, name) { Data = data };
        if (data.LongLength != v.Bytes)
            throw new GraphException($"constant {name}: {data.Length} bytes for {shape} {dtype.Name()} ({v.Bytes} bytes)");
        Constants.Add(v);
        return v;
    }

    /// <summary>Appends a node with one output of the given shape, dtype and format.</summary>
    public Node AddNode(OpKind kind, NodeAttrs attrs, IEnumerable<Value> inputs, Shape shape, DType dtype, MemoryFormat format, string? name = null)
    {
        var output = new Value(_nextId++, ValueKind.Activation, shape, dtype, format, "");
        var node = new Node(kind, attrs, inputs.ToList(), [output], name ?? $"{kind.ToString().ToLowerInvariant()}_{output.Id}");
        output.Producer = node;
        output.Name = node.Name;
        Nodes.Add(node);
        return node;
    }

    /// <summary>A strided alias of a buffer value (views of views are folded into one view of the buffer).</summary>
    public Value AddView(Value source, Shape shape, long[] strides, long offset, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (source.IsAlias) throw new GraphException($"view {name}: source {source} is itself a view; compose onto its buffer");
        var node = AddNode(OpKind.View, new ViewAttrs(strides, offset), [source], shape, source.DType, source.Format, name);
        return node.Output;
    }

    public IEnumerable<Value> AllValues()
    {
        foreach (var v in Inputs) yield return v;
        foreach (var v in Constants) yield return v;
        foreach (var n in Nodes) foreach (var o in n.Outputs) yield return o;
    }

    /// <summary>Every (node, input index) reading each value.</summary>
    public Dictionary<Value, List<(Node Node, int Index)>> Uses()
    {
        var uses = new Dictionary<Value, List<(Node, int)>>();
        foreach (var n in Nodes)
            for (int i = 0; i < n.Inputs.Count; i++)
            {
                if (!uses.TryGetValue(n.Inputs[i], out var list)) uses[n.Inputs[i]] = list = [];
                list.Add((n, i));
            }
        return uses;
    }

    /// <summary>Points every reader of <paramref name="old"/> (nodes and graph outputs) at <paramref name="replacement"/>.</summary>
    public void ReplaceUses(Value old, Value replacement)
    {
        foreach (var n in Nodes)
            for (int i = 0; i < n.Inputs.Count; i++)
                if (n.Inputs[i] == old) n.Inputs[i] = replacement;
        for (int i = 0; i < Outputs.Count; i++)
            if (Outputs[i] == old)
            {
                replacement.Name = old.Name;
                Outputs[i] = replacement;
            }
    }

    /// <summary>Removes a node (its output must no longer be read).</summary>
    public void Remove(Node node) => Nodes.Remove(node);

    /// <summary>Moves a node's output to another node: <paramref name="into"/> now produces <paramref name="from"/>'s output and <paramref name="from"/> is removed.</summary>
    internal void TakeOutput(Node into, Node from)
    {
        var v = from.Output;
        into.Outputs[0] = v;
        v.Producer = into;
        Nodes.Remove(from);
    }

    /// <summary>
    /// Drops unreachable constants and re-sorts nodes topologically (stable: producers first, otherwise the
    /// current order), then renumbers values in order (inputs, constants, node outputs) so dumps and files are deterministic.
    /// </summary>
    public void Compact()
    {
        var order = new List<Node>(Nodes.Count);
        var done = new HashSet<Node>();
        var visiting = new HashSet<Node>();
        void Visit(Node n)
        {
            if (done.Contains(n)) return;
            if (!visiting.Add(n)) throw new GraphException($"cycle through node {n.Name}");
            foreach (var i in n.Inputs) if (i.Producer is { } p) Visit(p);
            visiting.Remove(n);
            done.Add(n);
            order.Add(n);
        }
        foreach (var n in Nodes) Visit(n);
        Nodes.Clear();
        Nodes.AddRange(order);
        var used = new HashSet<Value>(Outputs);
        foreach (var n in Nodes) foreach (var i in n.Inputs) used.Add(i);
        Constants.RemoveAll(c => !used.Contains(c));
        int id = 0;
        foreach (var v in AllValues()) v.Id = id++;
        _nextId = id;
    }
}
