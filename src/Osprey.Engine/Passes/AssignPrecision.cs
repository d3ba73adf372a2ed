using Osprey.Core.Backends;
using Osprey.Core.Tensors;
using Osprey.Engine.Graph;

namespace Osprey.Engine.Passes;

/// <summary>
/// Lowers a float32 graph to float16 or bfloat16, keeping float32 where precision needs it:
/// reductions, softmax and argmax compute in float32, and so does every element-wise node feeding one (x*x before an
/// L2-norm sum would overflow float16) or fed by one (the normalisation that follows); graph outputs (the head outputs
/// that feed decoding) stay float32 (a concat writes its float32 output from 16-bit inputs directly) unless
/// <see cref="Float32Outputs"/> is false. Graph inputs stay
/// float32 and are cast once. Casts of constants are left for <see cref="ConstantFolding"/>, so weights are stored
/// in the target dtype.
/// </summary>
public sealed class AssignPrecision(DType target, bool float32Outputs = true) : IGraphPass
{
    /// <summary>
    /// False: graph outputs computed in the target dtype stay in it (a detector's float16 heads go to the GPU decode, which
    /// reads float16: the head concat writes half the bytes). True (default): every floating output is float32.
    /// </summary>
    public bool Float32Outputs { get; } = float32Outputs;

    public string Name => $"precision-{target.Name()}";

    public DType Target { get; } = target is DType.Float32 or DType.Float16 or DType.BFloat16
        ? target : throw new ArgumentException($"precision must be float32, float16 or bfloat16, got {target.Name()}", nameof(target));

    private static bool Sensitive(Node n) => n.Kind is OpKind.Reduce or OpKind.Softmax or OpKind.ArgMax;

    private static bool Elementwise(Node n) => n.Kind is OpKind.Unary or OpKind.Binary or OpKind.Where or OpKind.Copy;

    public bool Run(ComputeGraph graph)
    {
        ArgumentNullException.ThrowIfNull(graph);
        if (Target == DType.Float32) return false;
        var fp32 = Float32Nodes(graph);
        var casts = new Dictionary<(Value, DType), Value>();
        var outputs = new HashSet<Value>(graph.Outputs);
        foreach (var n in graph.Nodes.ToArray())
        {
            if (n.Kind == OpKind.Cast) continue;
            if (n.Kind == OpKind.View) { n.Output.DType = n.Inputs[0].DType; continue; }
            if (!n.Output.DType.IsFloating() && !n.Inputs.Any(i => i.DType.IsFloating())) continue;
            DType d = fp32.Contains(n) ? DType.Float32 : Target;
            if (n.Kind == OpKind.Concat)
            {
                if (outputs.Contains(n.Output) && Float32Outputs) d = DType.Float32;   // pieces are cast as they are copied
                n.Output.DType = d;
                continue;
            }
            for (int i = 0; i < n.Inputs.Count; i++)
            {
                var v = n.Inputs[i];
                if (v.DType.IsFloating() && v.DType != d) n.Inputs[i] = Converted(graph, casts, v, d);
            }
            if (n.Output.DType.IsFloating()) n.Output.DType = d;
        }
        for (int i = 0; i < graph.Outputs.Count && Float32Outputs; i++)
        {
            var o = graph.Outputs[i];
            if (!o.DType.IsFloating() || o.DType == DType.Float32) continue;
            var c = graph.AddNode(OpKind.Cast, NoAttrs.Instance, [o], o.Shape, DType.Float32, o.Format, o.Name + ".float32").Output;
            c.Name = o.Name;
            o.Name += $".{o.DType.Name()}";
            graph.Outputs[i] = c;
        }
        return true;
    }

    /// <summary>Sensitive nodes, element-wise nodes upstream of them (through views) and element-wise nodes downstream.</summary>
    private static HashSet<Node> Float32Nodes(ComputeGraph g)
    {
        var set = new HashSet<Node>();
        var work = new Stack<Node>();
        foreach (var n in g.Nodes) if (Sensitive(n)) { set.Add(n); work.Push(n); }
        while (work.Count > 0)
        {
            foreach (var v in work.Pop().Inputs)
                if (v.Buffer.Producer is { } p && Elementwise(p) && set.Add(p)) work.Push(p);
        }
        var uses = g.Uses();
        IEnumerable<Node> Readers(Value v)
        {
            foreach (var (n, _) in uses.GetValueOrDefault(v) ?? [])
            {
                if (n.Kind == OpKind.View) { foreach (var m in Readers(n.Output)) yield return m; }
                else yield return n;
            }
        }
        foreach (var n in set.ToArray()) work.Push(n);
        while (work.Count > 0)
        {
            foreach (var m in Readers(work.Pop().Output))
                if (Elementwise(m) && set.Add(m)) work.Push(m);
        }
        return set;
    }

    /// <summary>v as dtype d: a cast of the buffer (once per buffer and dtype), re-viewed if v was a view.</summary>
    private static Value Converted(ComputeGraph g, Dictionary<(Value, DType), Value> cache, Value v, DType d)
    {
        if (cache.TryGetValue((v, d), out var done)) return done;
        Value r;
        if (v.IsAlias)
        {
            var b = Converted(g, cache, v.Buffer, d);
            r = g.AddView(b, v.Shape, v.Strides, v.Offset);
        }
        else r = g.AddNode(OpKind.Cast, NoAttrs.Instance, [v], v.Shape, d, v.Format, $"{v.Name}.{d.Name()}").Output;
        cache[(v, d)] = r;
        return r;
    }
}

/// <summary>Checks that every convolution, pooling and resize runs on NHWC (channels-last) activations, as the GPU runtime requires.</summary>
public sealed class RequireChannelsLast : IGraphPass
{
    public string Name => "require-nhwc";

    public bool Run(ComputeGraph graph)
    {
        ArgumentNullException.ThrowIfNull(graph);
        var bad = graph.Nodes
            .Where(n => n.Kind is OpKind.Conv2d or OpKind.Pool2d or OpKind.Resize && !IsNhwc(n.Inputs[0]))
            .Select(n => $"{n.Name} ({n.Kind}, input {n.Inputs[0].Shape} {n.Inputs[0].DenseFormat?.ToString() ?? "strided"})").ToList();
        if (bad.Count > 0) throw new GraphException($"{bad.Count} nodes do not run channels-last: {string.Join("; ", bad.Take(5))}");
        return false;
    }

    /// <summary>Dense NHWC (a tensor with H = W = 1 is both NCHW and NHWC).</summary>
    private static bool IsNhwc(Value v) => v.Shape.Rank == 4 && Layout.SameStrides(v.Shape, v.Strides, v.Shape.ChannelsLastStrides());
}
