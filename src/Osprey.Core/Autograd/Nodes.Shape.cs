using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;

namespace Osprey.Core.Autograd;

/// <summary>Reshape, squeeze and unsqueeze: the gradient is reshaped back.</summary>
internal sealed class ReshapeNode(string name) : GradNode
{
    public override string Name => name;

    public override void Backward(Tensor g, Tensor?[] inputGrads) => inputGrads[0] = g.Reshape(Inputs[0]!.Shape.ToArray());
}

/// <summary>Permute: the gradient is permuted back by the inverse permutation.</summary>
internal sealed class PermuteNode(int[] dims) : GradNode
{
    public override string Name => "permute";

    public override void Backward(Tensor g, Tensor?[] inputGrads)
    {
        var inverse = new int[dims.Length];
        for (int i = 0; i < dims.Length; i++) inverse[Shape.NormalizeAxis(dims[i], dims.Length, "permute")] = i;
        inputGrads[0] = g.Permute(inverse);
    }
}

/// <summary>Expand (broadcast view): the gradient is summed over the repeated dimensions.</summary>
internal sealed class ExpandNode : GradNode
{
    public override string Name => "expand";

    public override void Backward(Tensor g, Tensor?[] inputGrads) => inputGrads[0] = SumTo(g, Inputs[0]!.Shape);
}

/// <summary>Slice (start, step along an axis, already normalised): the gradient lands in a zero tensor of x's shape.</summary>
internal sealed class SliceNode(int axis, int start, int step) : GradNode
{
    public override string Name => "slice";

    public override void Backward(Tensor g, Tensor?[] inputGrads)
    {
        var gx = Tensor.Zeros(Inputs[0]!.Shape, g.DType, g.Device);
        int len = g.Shape[axis];
        using (var dst = gx.Slice(axis, start, len == 0 ? start : start + (len - 1) * step + 1, step))
            if (len > 0) Op.CopyInto(g, dst);
        inputGrads[0] = gx;
    }
}

/// <summary>Concat: each input's gradient is its slice of g (a view).</summary>
internal sealed class ConcatNode(int axis) : GradNode
{
    public override string Name => "concat";

    public override void Backward(Tensor g, Tensor?[] inputGrads)
    {
        int start = 0;
        for (int i = 0; i < Inputs.Length; i++)
        {
            int len = Inputs[i]!.Shape[axis];
            if (Needs(i)) inputGrads[i] = g.Slice(axis, start, start + len);
            start += len;
        }
    }
}

/// <summary>Constant pad: the gradient is the unpadded window of g (a view).</summary>
internal sealed class PadNode((int Before, int After)[] pads) : GradNode
{
    public override string Name => "pad";

    public override void Backward(Tensor g, Tensor?[] inputGrads)
    {
        var x = Inputs[0]!;
        Tensor inner = g.Share();
        for (int d = 0; d < x.Rank; d++)
        {
            var next = inner.Slice(d, pads[d].Before, pads[d].Before + x.Shape[d]);
            inner.Dispose();
            inner = next;
        }
        inputGrads[0] = inner;
    }
}

/// <summary>gather (and index_select, whose 1-D index is broadcast over the output): the backend's scatter-add.</summary>
internal sealed class GatherNode(int axis, bool indexSelect) : GradNode
{
    private Tensor? _index;

    public override string Name => indexSelect ? "index_select" : "gather";

    public override void Save() => _index = Keep(Inputs[1]!);

    public override void Backward(Tensor g, Tensor?[] inputGrads)
    {
        var x = Inputs[0]!;
        Tensor index;
        if (indexSelect)
        {
            var dims = new int[g.Rank];
            Array.Fill(dims, 1);
            dims[axis] = _index!.Shape[0];
            using var r = _index.Reshape(dims);
            using var e = r.Expand(g.Shape);
            index = Op.Contiguous(e);
        }
        else index = Op.Contiguous(_index!);
        using (index)
        using (var gc = Op.Contiguous(g))
        {
            var gx = Tensor.Zeros(x.Shape, g.DType, g.Device);
            g.Backend.ScatterAdd(gc, axis, index, gx);
            inputGrads[0] = gx;
        }
    }
}

/// <summary>Sum, mean, max or min over axes: g broadcast back; max and min share it among the tied extremes (torch's amax rule).</summary>
internal sealed class ReduceNode(ReduceOp op, int[] axes) : GradNode
{
    private Tensor? _x, _y;

    public override string Name => op.ToString().ToLowerInvariant();

    public override void Save()
    {
        if (op is ReduceOp.Max or ReduceOp.Min)
        {
            _x = Keep(Inputs[0]!);
            _y = Keep(Output);
        }
    }

    public override void Backward(Tensor g, Tensor?[] inputGrads)
    {
        var xs = Inputs[0]!.Shape;
        var kept = xs.ToArray();
        long count = 1;
        foreach (int a in axes) { count *= kept[a]; kept[a] = 1; }
        var keptShape = new Shape(kept);
        switch (op)
        {
            case ReduceOp.Sum:
                inputGrads[0] = ExpandBack(g, keptShape, xs);
                break;
            case ReduceOp.Mean:
                {
                    using var e = ExpandBack(g, keptShape, xs);
                    inputGrads[0] = Op.Binary(BinaryOp.Div, e, count == 0 ? 1 : count);
                    break;
                }
            default:
                {
                    using var yk = _y!.Reshape(kept);
                    using var hit = Op.Binary(BinaryOp.Eq, _x!, yk);
                    using var mask = Op.Cast(hit, g.DType);
                    using var n = Op.Sum(mask, axes, keepDims: true);
                    using var gk = g.Reshape(kept);
                    using var share = Op.Div(gk, n);
                    inputGrads[0] = Op.Mul(mask, share);
                    break;
                }
        }
    }
}
