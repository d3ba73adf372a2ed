using Osprey.Core.Tensors;
using Osprey.Engine.Graph;

namespace Osprey.Engine.Passes;

/// <summary>
/// Pads a convolution's output channels to a multiple of <see cref="Multiple"/> with zero filters and zero bias, so a
/// detection head (RetinaNet's 256->819 class conv, SSD's 512->364) runs with tensor-core-friendly shapes like the other
/// convolutions. Readers never see the padding: every reader of the output is a view, re-pointed at the real channels of
/// the padded buffer. A view whose dimension runs across the channel boundary (the head flatten [N, H*W*A, K] of an NHWC
/// output [N, H, W, A*K]) is split there ([N, H*W, A, K]) and is accepted only by a concat along that axis, which reads
/// a piece split in two (see ShapeInference's Concat); so the padding costs no copy.
/// A reader of the whole output that takes any strides (a transposing copy, NVIDIA SSD's channel-major flatten) reads a
/// view of the real channels instead.
/// Skipped (left as they are): grouped convolutions, convolutions with a residual, non-constant weights or bias, outputs
/// that are graph outputs or read by a kernel needing dense input, and views whose readers cannot take the new strides.
/// </summary>
public sealed class PadConvChannels(int multiple = 8) : IGraphPass
{
    public int Multiple { get; } = multiple >= 2 ? multiple : throw new ArgumentOutOfRangeException(nameof(multiple), multiple, "pad-conv-channels: the multiple must be at least 2");

    public string Name => $"pad-conv-channels-{Multiple}";

    public bool Run(ComputeGraph graph)
    {
        ArgumentNullException.ThrowIfNull(graph);
        bool changed = false;
        foreach (var conv in graph.Nodes.ToArray())
        {
            if (conv.Kind != OpKind.Conv2d) continue;
            var a = conv.AttrsAs<ConvAttrs>();
            var w = conv.Inputs[1];
            var y = conv.Output;
            int o = w.Shape[0];
            if (o % Multiple == 0 || a.HasResidual || a.Geometry.Groups != 1 || !IsDenseConstant(w)) continue;
            if (a.HasBias && !IsDenseConstant(conv.Inputs[2])) continue;
            if (y.Shape.Rank != 4 || graph.Outputs.Contains(y)) continue;
            int padded = checked((o + Multiple - 1) / Multiple * Multiple);
            var plan = PlanViews(graph, y, padded);
            if (plan is null) continue;

            conv.Inputs[1] = Padded(graph, w, padded);
            if (a.HasBias) conv.Inputs[2] = Padded(graph, conv.Inputs[2], padded);
            y.Shape = y.Shape.With(1, padded);
            Value? whole = null;
            foreach (var (reader, shape, strides, offset) in plan)
            {
                if (reader.Index >= 0)
                {
                    whole ??= graph.AddView(y, shape, strides, offset, $"{y.Name}.real");
                    reader.Node.Inputs[reader.Index] = whole;
                    continue;
                }
                reader.Node.Attrs = new ViewAttrs(strides, offset);
                reader.Node.Output.Shape = shape;
            }
            changed = true;
        }
        return changed;
    }

    private static bool IsDenseConstant(Value v) => v.Kind == ValueKind.Constant && !v.IsAlias && v.Data is not null && v.Shape.Rank >= 1 && v.Shape[0] > 0;

    /// <summary>A constant with its first dimension grown to <paramref name="rows"/>, the new rows zero (weights [O, ...] in any layout keep O outermost).</summary>
    private static Value Padded(ComputeGraph g, Value c, int rows)
    {
        var data = new byte[checked(c.Data!.LongLength / c.Shape[0] * rows)];
        c.Data.CopyTo(data, 0);
        return g.AddConstant($"{c.Name}.padded", c.Shape.With(0, rows), c.DType, c.Format, data);
    }

    /// <summary>
    /// The new (shape, strides, offset) of every view of <paramref name="y"/> once its channels grow to
    /// <paramref name="padded"/>, or null if any reader is not a view or a view cannot be re-pointed.
    /// In memory order y is (outer..., C, inner...); with I the product of the inner sizes and U = C*I, element p of
    /// the old buffer lives at f(p) = (p / U) * U' + p % U of the new one (U' = padded*I). A view dimension whose stride
    /// is a multiple of U moves whole blocks (new stride stride/U*U'); the other dimensions move inside a block and keep
    /// their strides, provided that the block offset of the view's start plus their largest reach stays below U (then no
    /// element crosses a block and f is affine in them). One dimension whose stride divides U and whose size is a
    /// multiple of A = U/stride may be split into (size/A blocks, A inside a block) to satisfy that; such a view must be
    /// read only by concats along that dimension. A non-view reader taking any strides reads a new view of the real channels.
    /// </summary>
    /// <summary>A view node to re-point (Index -1), or input Index of another node to read through a new view.</summary>
    private readonly record struct Reader(Node Node, int Index);

    private static List<(Reader Reader, Shape Shape, long[] Strides, long Offset)>? PlanViews(ComputeGraph g, Value y, int padded)
    {
        var uses = g.Uses();
        if (!uses.TryGetValue(y, out var readers) || readers.Count == 0) return null;
        var shape = y.Shape;
        long inner = y.Format == MemoryFormat.ChannelsLast ? 1 : (long)shape[2] * shape[3];
        long u = shape[1] * inner, u2 = padded * inner;
        var plan = new List<(Reader, Shape, long[], long)>();
        foreach (var (view, index) in readers)
        {
            if (view.Kind != OpKind.View)
            {
                // a reader of the whole buffer that takes any strides (NVIDIA SSD's transposing head copy) reads a view of the real channels
                if (!AcceptsStrided(view)) return null;
                var dense = Remap(shape, y.Strides, 0, u, u2);
                if (dense is not { SplitAxis: < 0 } d) return null;
                plan.Add((new Reader(view, index), d.Shape, d.Strides, d.Offset));
                continue;
            }
            if (g.Outputs.Contains(view.Output)) return null;
            var va = view.AttrsAs<ViewAttrs>();
            var mapped = Remap(view.Output.Shape, va.Strides, va.Offset, u, u2);
            if (mapped is not { } m) return null;
            var viewReaders = uses.GetValueOrDefault(view.Output) ?? [];
            if (m.SplitAxis < 0)
            {
                if (!viewReaders.All(r => AcceptsStrided(r.Node))) return null;
            }
            else if (!viewReaders.All(r => r.Node.Kind == OpKind.Concat && r.Node.AttrsAs<AxisAttrs>().Axis == m.SplitAxis
                                            && r.Node.Output.Shape.Rank == view.Output.Shape.Rank)) return null;
            plan.Add((new Reader(view, -1), m.Shape, m.Strides, m.Offset));
        }
        return plan;
    }

    private static (Shape Shape, long[] Strides, long Offset, int SplitAxis)? Remap(Shape shape, long[] strides, long offset, long u, long u2)
    {
        int r = shape.Rank;
        if (shape.Numel == 0 || offset < 0) return null;
        for (int d = 0; d < r; d++) if (strides[d] < 0) return null;
        long start = offset % u;
        long newOffset = offset / u * u2 + start;
        // reach inside a block of every in-block dimension (size-1 dimensions reach nothing)
        long reach = 0;
        for (int d = 0; d < r; d++)
            if (shape[d] > 1 && strides[d] % u != 0) reach = checked(reach + (shape[d] - 1) * strides[d]);
        if (start + reach < u) return (shape, NewStrides(shape, strides, u, u2), newOffset, -1);
        for (int d = 0; d < r; d++)
        {
            long s = strides[d];
            if (shape[d] <= 1 || s % u == 0 || u % s != 0) continue;
            long a = u / s;
            if (shape[d] % a != 0) continue;
            long rest = reach - (shape[d] - 1) * s + (a - 1) * s;
            if (start + rest >= u) continue;
            var dims = new int[r + 1];
            var st = new long[r + 1];
            var old = NewStrides(shape, strides, u, u2);
            for (int i = 0, j = 0; i < r; i++, j++)
            {
                if (i == d)
                {
                    dims[j] = checked((int)(shape[d] / a));
                    st[j] = u2;
                    j++;
                    dims[j] = (int)a;
                    st[j] = s;
                }
                else
                {
                    dims[j] = shape[i];
                    st[j] = old[i];
                }
            }
            return (new Shape(dims), st, newOffset, d);
        }
        return null;
    }

    private static long[] NewStrides(Shape shape, long[] strides, long u, long u2)
    {
        var st = new long[shape.Rank];
        for (int d = 0; d < st.Length; d++) st[d] = strides[d] % u == 0 ? strides[d] / u * u2 : strides[d];
        return st;
    }

    /// <summary>Kernels whose IBackend contract takes inputs with any strides (as in CopyElimination).</summary>
    private static bool AcceptsStrided(Node n) =>
        n.Kind is OpKind.Copy or OpKind.Cast or OpKind.Unary or OpKind.Binary or OpKind.Where or OpKind.Reduce or OpKind.ArgMax or OpKind.Concat;
}
