using Osprey.Core.Backends;
using Osprey.Core.Tensors;

namespace Osprey.Engine.Graph;

/// <summary>
/// Output shape and dtype of every node kind from its inputs and attributes, and a whole-graph validator
/// (definition before use, constant sizes, view bounds, every recorded shape equal to the inferred one).
/// </summary>
public static class ShapeInference
{
    public static (Shape Shape, DType DType) Infer(Node node)
    {
        ArgumentNullException.ThrowIfNull(node);
        var ins = node.Inputs;
        Value x = ins.Count > 0 ? ins[0] : throw Fail(node, "has no inputs");
        switch (node.Kind)
        {
            case OpKind.Copy:
                Arity(node, 1);
                return (x.Shape, x.DType);
            case OpKind.Cast:
                Arity(node, 1);
                return (x.Shape, node.Output.DType);
            case OpKind.Unary:
                Arity(node, 1);
                Floating(node, x);
                return (x.Shape, x.DType);
            case OpKind.Binary:
            {
                Arity(node, 2);
                SameShape(node, x, ins[1]);
                SameDType(node, x, ins[1]);
                var op = node.AttrsAs<BinaryAttrs>().Op;
                return (x.Shape, op >= BinaryOp.Eq ? DType.Bool : x.DType);
            }
            case OpKind.Where:
                Arity(node, 3);
                SameShape(node, x, ins[1]);
                SameShape(node, x, ins[2]);
                SameDType(node, ins[1], ins[2]);
                if (x.DType != DType.Bool) throw Fail(node, $"condition is {x.DType.Name()}, not bool");
                return (x.Shape, ins[1].DType);
            case OpKind.Reduce:
            {
                Arity(node, 1);
                var dims = x.Shape.ToArray();
                foreach (int a in node.AttrsAs<ReduceAttrs>().Axes)
                {
                    if (a < 0 || a >= dims.Length) throw Fail(node, $"axis {a} out of range for {x.Shape}");
                    dims[a] = 1;
                }
                return (new Shape(dims), x.DType);
            }
            case OpKind.ArgMax:
            {
                Arity(node, 1);
                int a = node.AttrsAs<AxisAttrs>().Axis;
                if (a < 0 || a >= x.Shape.Rank) throw Fail(node, $"axis {a} out of range for {x.Shape}");
                return (x.Shape.With(a, 1), DType.Int64);
            }
            case OpKind.Softmax:
                Arity(node, 1);
                Floating(node, x);
                return (x.Shape, x.DType);
            case OpKind.MatMul:
                return InferMatMul(node);
            case OpKind.Conv2d:
                return InferConv(node);
            case OpKind.Pool2d:
            {
                Arity(node, 1);
                Rank(node, x, 4);
                var p = node.AttrsAs<PoolAttrs>().Geometry;
                int oh = p.OutH(x.Shape[2]), ow = p.OutW(x.Shape[3]);
                if (oh <= 0 || ow <= 0) throw Fail(node, $"pooling {p} does not fit input {x.Shape}");
                return (new Shape(x.Shape[0], x.Shape[1], oh, ow), x.DType);
            }
            case OpKind.Resize:
            {
                Arity(node, 1);
                Rank(node, x, 4);
                var o = node.Output.Shape;
                if (o.Rank != 4 || o[2] <= 0 || o[3] <= 0) throw Fail(node, $"output {o} is not a positive 4-D size");
                return (new Shape(x.Shape[0], x.Shape[1], o[2], o[3]), x.DType);
            }
            case OpKind.Concat:
            {
                // an input may have one dimension more than the output: a piece split at the axis ([N, H*W, A, K] for
                // [N, H*W*A, K], how PadConvChannels re-points a head flatten), its dimensions axis and axis + 1 merged
                int axis = node.AttrsAs<AxisAttrs>().Axis, rank = node.Output.Shape.Rank;
                if (axis < 0 || axis >= rank) throw Fail(node, $"axis {axis} out of range for output rank {rank}");
                Shape? first = null;
                int total = 0;
                foreach (var v in ins)
                {
                    var s = ConcatPiece(node, v, axis, rank);
                    first ??= s;
                    bool ok = true;
                    for (int d = 0; ok && d < rank; d++) ok = d == axis || s[d] == first.Value[d];
                    if (!ok) throw Fail(node, $"input {v} {v.Shape} differs from {first} outside axis {axis}");
                    if (v.DType != node.Output.DType && !(v.DType.IsFloating() && node.Output.DType.IsFloating()))
                        throw Fail(node, $"input {v} is {v.DType.Name()}, output {node.Output.DType.Name()}");
                    total = checked(total + s[axis]);
                }
                return (first!.Value.With(axis, total), node.Output.DType);
            }
            case OpKind.View:
            {
                Arity(node, 1);
                if (x.IsAlias) throw Fail(node, $"views {x}, which is itself a view");
                var a = node.AttrsAs<ViewAttrs>();
                var o = node.Output.Shape;
                if (a.Strides.Length != o.Rank) throw Fail(node, $"{a.Strides.Length} strides for shape {o}");
                var (lo, hi) = Layout.Extent(o, a.Strides, a.Offset);
                if (hi >= lo && (lo < 0 || hi >= x.Numel))
                    throw Fail(node, $"view {o} reaches elements [{lo}, {hi}] of a buffer of {x.Numel} ({x.Shape})");
                return (o, x.DType);
            }
            default:
                throw Fail(node, "unknown kind");
        }
    }

    private static (Shape, DType) InferConv(Node node)
    {
        var a = node.AttrsAs<ConvAttrs>();
        Arity(node, 2 + (a.HasBias ? 1 : 0) + (a.HasResidual ? 1 : 0));
        Value x = node.Inputs[0], w = node.Inputs[1];
        Rank(node, x, 4);
        Rank(node, w, 4);
        Floating(node, x);
        SameDType(node, x, w);
        var p = a.Geometry;
        int c = x.Shape[1], o = w.Shape[0];
        if (p.Groups < 1 || c % p.Groups != 0 || o % p.Groups != 0 || w.Shape[1] != c / p.Groups)
            throw Fail(node, $"input {x.Shape} and weight {w.Shape} do not fit groups={p.Groups}");
        int oh = p.OutH(x.Shape[2], w.Shape[2]), ow = p.OutW(x.Shape[3], w.Shape[3]);
        if (oh <= 0 || ow <= 0) throw Fail(node, $"kernel {w.Shape} does not fit input {x.Shape}");
        var shape = new Shape(x.Shape[0], o, oh, ow);
        int k = 2;
        if (a.HasBias)
        {
            var b = node.Inputs[k++];
            if (b.Shape != new Shape(o)) throw Fail(node, $"bias {b.Shape} is not [{o}]");
            SameDType(node, x, b);
        }
        if (a.HasResidual)
        {
            var r = node.Inputs[k];
            SameShape(node, r, shape);
            SameDType(node, x, r);
        }
        return (shape, x.DType);
    }

    private static (Shape, DType) InferMatMul(Node node)
    {
        var a = node.AttrsAs<MatMulAttrs>();
        Arity(node, 2 + (a.HasBias ? 1 : 0) + (a.HasResidual ? 1 : 0));
        Value x = node.Inputs[0], w = node.Inputs[1];
        Rank(node, x, 3);
        Rank(node, w, 3);
        SameDType(node, x, w);
        int m = a.TransposeA ? x.Shape[2] : x.Shape[1], ka = a.TransposeA ? x.Shape[1] : x.Shape[2];
        int kb = a.TransposeB ? w.Shape[2] : w.Shape[1], n = a.TransposeB ? w.Shape[1] : w.Shape[2];
        if (ka != kb) throw Fail(node, $"inner dimensions differ: {x.Shape} @ {w.Shape}");
        int ba = x.Shape[0], bb = w.Shape[0];
        if (ba != bb && ba != 1 && bb != 1) throw Fail(node, $"batch {ba} and {bb} do not broadcast");
        var shape = new Shape(Math.Max(ba, bb), m, n);
        int k = 2;
        if (a.HasBias && node.Inputs[k++].Shape != new Shape(n)) throw Fail(node, $"bias is not [{n}]");
        if (a.HasResidual) SameShape(node, node.Inputs[k], shape);
        return (shape, x.DType);
    }

    /// <summary>Checks the whole graph; throws <see cref="GraphException"/> naming the first problem.</summary>
    public static void Validate(ComputeGraph graph)
    {
        ArgumentNullException.ThrowIfNull(graph);
        var defined = new HashSet<Value>(graph.Inputs);
        foreach (var c in graph.Constants)
        {
            if (c.Data is null || c.Data.LongLength != c.Bytes)
                throw new GraphException($"constant {c} ({c.Name}) holds {c.Data?.Length ?? 0} bytes, {c.Shape} {c.DType.Name()} needs {c.Bytes}");
            defined.Add(c);
        }
        foreach (var n in graph.Nodes)
        {
            foreach (var i in n.Inputs)
                if (!defined.Contains(i)) throw new GraphException($"node {n.Name} ({n.Kind}) reads {i} ({i.Name}) before it is defined");
            var (shape, dtype) = Infer(n);
            if (n.Outputs.Count != 1) throw new GraphException($"node {n.Name} has {n.Outputs.Count} outputs");
            var o = n.Output;
            if (o.Shape != shape || o.DType != dtype)
                throw new GraphException($"node {n.Name} ({n.Kind}) records output {o.Shape} {o.DType.Name()}, inference gives {shape} {dtype.Name()}");
            if (o.Producer != n) throw new GraphException($"value {o} is not linked to its producer {n.Name}");
            if (!defined.Add(o)) throw new GraphException($"value {o} defined twice");
        }
        if (graph.Outputs.Count == 0) throw new GraphException("graph has no outputs");
        foreach (var o in graph.Outputs)
            if (!defined.Contains(o)) throw new GraphException($"output {o.Name} ({o}) is never computed");
    }

    /// <summary>A concat input's shape at the output's rank: as it is, or with a split axis (rank + 1) merged back.</summary>
    public static Shape ConcatPiece(Node node, Value v, int axis, int rank)
    {
        var s = v.Shape;
        if (s.Rank == rank) return s;
        if (s.Rank != rank + 1) throw Fail(node, $"input {v} {s} has rank {s.Rank}, the output {rank} (or {rank + 1} split at axis {axis})");
        var dims = new int[rank];
        for (int d = 0; d < rank; d++)
            dims[d] = d < axis ? s[d] : d == axis ? checked(s[axis] * s[axis + 1]) : s[d + 1];
        return new Shape(dims);
    }

    private static GraphException Fail(Node n, string problem) => new($"node {n.Name} ({n.Kind}): {problem}");

    private static void Arity(Node n, int count)
    {
        if (n.Inputs.Count != count) throw Fail(n, $"has {n.Inputs.Count} inputs, expected {count}");
    }

    private static void Rank(Node n, Value v, int rank)
    {
        if (v.Shape.Rank != rank) throw Fail(n, $"input {v} must be {rank}-D, got {v.Shape}");
    }

    private static void Floating(Node n, Value v)
    {
        if (!v.DType.IsFloating()) throw Fail(n, $"input {v} is {v.DType.Name()}, not floating-point");
    }

    private static void SameShape(Node n, Value a, Value b) => SameShape(n, a, b.Shape);

    private static void SameShape(Node n, Value a, Shape s)
    {
        if (a.Shape != s) throw Fail(n, $"input {a} is {a.Shape}, expected {s}");
    }

    private static void SameDType(Node n, Value a, Value b)
    {
        if (a.DType != b.DType) throw Fail(n, $"dtypes differ: {a} {a.DType.Name()}, {b} {b.DType.Name()}");
    }
}
