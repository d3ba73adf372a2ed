using Osprey.Engine.Graph;

namespace Osprey.Engine.Passes;

/// <summary>
/// Removes copies (reshape-through-contiguous, permute-then-copy, NHWC-to-NCHW round trips): a Copy's readers are
/// re-pointed at its source through composed views when the composition is a strided view (checked exactly), and
/// every reader accepts the resulting strides. A copy that only re-lays a dense tensor identically becomes a view.
/// Consumers that need dense inputs (convolution, pooling, resize, matmul, softmax) keep a copy unless the view
/// is dense in the same format. Graph outputs are never aliased.
/// </summary>
public sealed class CopyElimination : IGraphPass
{
    public string Name => "eliminate-copies";

    public bool Run(ComputeGraph graph)
    {
        ArgumentNullException.ThrowIfNull(graph);
        bool any = false, changed = true;
        while (changed)
        {
            changed = false;
            foreach (var copy in graph.Nodes.ToArray())
            {
                if (copy.Kind != OpKind.Copy || !graph.Nodes.Contains(copy)) continue;
                if (TryRemove(graph, copy)) changed = any = true;
            }
        }
        return any;
    }

    private static bool TryRemove(ComputeGraph g, Node copy)
    {
        var u = copy.Inputs[0];
        var y = copy.Output;
        if (g.Outputs.Contains(y) || u.DType != y.DType) return false;
        Value source = u.Buffer;
        long[] inner = u.Strides;
        long innerOffset = u.Offset;
        var uses = g.Uses().GetValueOrDefault(y) ?? [];
        var rewrites = new List<(Node Node, int Index, (long[] Strides, long Offset)? View)>();
        bool denseSame = Dense(y.Shape, inner) == y.Format;
        foreach (var (n, i) in uses)
        {
            if (n.Kind == OpKind.View)
            {
                var va = n.AttrsAs<ViewAttrs>();
                var composed = Layout.Compose(n.Output.Shape, va.Strides, va.Offset, y.Shape, y.Strides, inner, innerOffset);
                if (composed is null || g.Outputs.Contains(n.Output)) return false;
                // the composed view must still satisfy the view's readers: a dense view stays dense only if its strides do not change
                if (!Layout.SameStrides(n.Output.Shape, composed.Value.Strides, va.Strides) && !AllAcceptStrided(g, n.Output)) return false;
                rewrites.Add((n, i, composed));
            }
            else if (denseSame || AcceptsStrided(n))
            {
                rewrites.Add((n, i, null));
            }
            else return false;
        }
        Value? alias = null;
        foreach (var (n, i, view) in rewrites)
        {
            if (view is { } v)
            {
                n.Inputs[0] = source;
                n.Attrs = new ViewAttrs(v.Strides, v.Offset);
            }
            else
            {
                alias ??= source.Shape == y.Shape && innerOffset == 0 && Layout.SameStrides(y.Shape, inner, source.Strides)
                    ? source
                    : g.AddView(source, y.Shape, inner, innerOffset, y.Name);
                n.Inputs[i] = alias;
            }
        }
        g.Remove(copy);
        return true;
    }

    private static Core.Tensors.MemoryFormat? Dense(Core.Tensors.Shape shape, long[] strides) =>
        Layout.SameStrides(shape, strides, shape.ContiguousStrides()) ? Core.Tensors.MemoryFormat.Contiguous
        : shape.Rank == 4 && Layout.SameStrides(shape, strides, shape.ChannelsLastStrides()) ? Core.Tensors.MemoryFormat.ChannelsLast : null;

    private static bool AllAcceptStrided(ComputeGraph g, Value v) =>
        !g.Outputs.Contains(v) && (g.Uses().GetValueOrDefault(v) ?? []).All(u => AcceptsStrided(u.Node));

    /// <summary>Kernels whose IBackend contract takes inputs with any strides.</summary>
    private static bool AcceptsStrided(Node n) =>
        n.Kind is OpKind.Copy or OpKind.Cast or OpKind.Unary or OpKind.Binary or OpKind.Where or OpKind.Reduce or OpKind.ArgMax or OpKind.Concat;
}
