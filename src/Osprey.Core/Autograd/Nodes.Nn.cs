using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;

namespace Osprey.Core.Autograd;

/// <summary>
/// The derivative of a fused epilogue's activation: gz = g * act'(z), from the op's output y where the
/// kind allows it, otherwise from the pre-activation z that the node recomputed when it was recorded.
/// </summary>
internal static class EpilogueGrad
{
    public static bool NeedsPreActivation(UnaryOp act) => !UnaryNode.FromOutput(act.Kind);

    public static Tensor Apply(UnaryOp act, Tensor g, Tensor? y, Tensor? z)
    {
        if (act.Kind == UnaryKind.Identity) return g.Share();
        var src = z ?? y!;
        using var gc = Op.Contiguous(g);
        using var sc = Op.Contiguous(src);
        var gz = Tensor.Empty(g.Shape, g.DType, g.Device);
        g.Backend.UnaryBackward(act, sc, sc, gc, gz);
        return gz;
    }
}

/// <summary>y = act(conv2d(x, w) + bias + residual). Inputs: x, weight, bias, residual.</summary>
internal sealed class Conv2dNode(Conv2dParams p, UnaryOp act) : GradNode
{
    private Tensor? _x, _w, _y, _z;

    public override string Name => "conv2d";

    public override void Save()
    {
        if (Needs(1)) _x = Keep(Inputs[0]!);
        if (Needs(0)) _w = Keep(Inputs[1]!);
        if (act.Kind == UnaryKind.Identity) return;
        if (!EpilogueGrad.NeedsPreActivation(act)) { _y = Keep(Output); return; }
        // the fused activation needs its input: run the convolution again without it (training only)
        var x = Inputs[0]!;
        using var z = Op.Conv2d(x, Inputs[1]!, p, new Epilogue(Inputs[2], Inputs[3]));
        _z = Keep(z);
    }

    public override void Backward(Tensor g, Tensor?[] inputGrads)
    {
        using var gz = EpilogueGrad.Apply(act, g, _y, _z);
        var x = Inputs[0]!;
        using var gd = gz.DenseFormat is not null ? gz.Share() : Op.Contiguous(gz);
        if (Needs(0))
        {
            var format = gd.IsContiguous() ? MemoryFormat.Contiguous : MemoryFormat.ChannelsLast;
            var gx = Tensor.Empty(x.Shape, g.DType, g.Device, format);
            using var wd = _w!.DenseFormat is not null ? _w.Share() : Op.Contiguous(_w);
            g.Backend.Conv2dBackwardData(gd, wd, p, gx);
            inputGrads[0] = gx;
        }
        if (Needs(1))
        {
            var gw = Tensor.Empty(Inputs[1]!.Shape, g.DType, g.Device);
            using var xd = _x!.DenseFormat is not null ? _x.Share() : Op.Contiguous(_x);
            g.Backend.Conv2dBackwardFilter(xd, gd, p, gw);
            inputGrads[1] = gw;
        }
        if (Needs(2)) inputGrads[2] = Op.Sum(gz, [0, 2, 3]);
        if (Needs(3)) inputGrads[3] = gz.Share();
    }
}

/// <summary>y = act(op(a) @ op(b) + bias + residual), batched with broadcasting. Inputs: a, b, bias, residual.</summary>
internal sealed class MatMulNode(bool transposeA, bool transposeB, UnaryOp act) : GradNode
{
    private Tensor? _a, _b, _y, _z;

    public override string Name => "matmul";

    public override void Save()
    {
        if (Needs(1)) _a = Keep(Inputs[0]!);
        if (Needs(0)) _b = Keep(Inputs[1]!);
        if (act.Kind == UnaryKind.Identity) return;
        if (!EpilogueGrad.NeedsPreActivation(act)) { _y = Keep(Output); return; }
        using var z = Op.MatMul(Inputs[0]!, Inputs[1]!, transposeA, transposeB, new Epilogue(Inputs[2], Inputs[3]));
        _z = Keep(z);
    }

    public override void Backward(Tensor g, Tensor?[] inputGrads)
    {
        using var gz = EpilogueGrad.Apply(act, g, _y, _z);
        if (Needs(0))
        {
            // d op(a) = gz @ op(b)ᵀ; da = transpose of that when a was transposed
            using var gop = transposeA ? Op.MatMul(_b!, gz, transposeA: transposeB, transposeB: true) : Op.MatMul(gz, _b!, transposeB: !transposeB);
            inputGrads[0] = SumBatch(gop, Inputs[0]!.Shape);
        }
        if (Needs(1))
        {
            using var gop = transposeB ? Op.MatMul(gz, _a!, transposeA: true, transposeB: transposeA) : Op.MatMul(_a!, gz, transposeA: !transposeA);
            inputGrads[1] = SumBatch(gop, Inputs[1]!.Shape);
        }
        if (Needs(2))
        {
            var axes = new int[gz.Rank - 1];
            for (int i = 0; i < axes.Length; i++) axes[i] = i;
            inputGrads[2] = Op.Sum(gz, axes);
        }
        if (Needs(3)) inputGrads[3] = gz.Share();
    }

    /// <summary>A batched gradient summed over the batch when the operand was 2-D or had batch 1.</summary>
    private static Tensor SumBatch(Tensor g, Shape target)
    {
        if (g.Shape == target) return g.Share();
        if (g.Rank == 3 && target.Rank == 2) return Op.Sum(g, [0]);
        return SumTo(g, target);
    }
}

/// <summary>Max or average pooling; max recomputes each window's argmax from the saved input.</summary>
internal sealed class Pool2dNode(PoolKind kind, Pool2dParams p) : GradNode
{
    private Tensor? _x;

    public override string Name => kind == PoolKind.Max ? "max_pool2d" : "avg_pool2d";

    public override void Save() => _x = Keep(Inputs[0]!);

    public override void Backward(Tensor g, Tensor?[] inputGrads)
    {
        using var xd = _x!.DenseFormat is not null ? _x.Share() : Op.Contiguous(_x);
        using var gd = g.DenseFormat is not null ? g.Share() : Op.Contiguous(g);
        var format = xd.IsContiguous() ? MemoryFormat.Contiguous : MemoryFormat.ChannelsLast;
        var gx = Tensor.Empty(xd.Shape, g.DType, g.Device, format);
        g.Backend.Pool2dBackward(kind, xd, gd, p, gx);
        inputGrads[0] = gx;
    }
}

/// <summary>Nearest or bilinear resize: the adjoint scatters each output gradient back to its taps.</summary>
internal sealed class ResizeNode(ResizeMode mode) : GradNode
{
    public override string Name => mode == ResizeMode.Nearest ? "interpolate_nearest" : "interpolate_bilinear";

    public override void Backward(Tensor g, Tensor?[] inputGrads)
    {
        using var gd = g.DenseFormat is not null ? g.Share() : Op.Contiguous(g);
        var format = gd.IsContiguous() ? MemoryFormat.Contiguous : MemoryFormat.ChannelsLast;
        var gx = Tensor.Empty(Inputs[0]!.Shape, g.DType, g.Device, format);
        g.Backend.ResizeBackward(mode, gd, gx);
        inputGrads[0] = gx;
    }
}

/// <summary>softmax: gx = y (g - sum(g y)); log_softmax: gx = g - exp(y) sum(g).</summary>
internal sealed class SoftmaxNode(int axis, bool log) : GradNode
{
    private Tensor? _y;

    public override string Name => log ? "log_softmax" : "softmax";

    public override void Save() => _y = Keep(Output);

    public override void Backward(Tensor g, Tensor?[] inputGrads)
    {
        if (log)
        {
            using var s = Op.Sum(g, [axis], keepDims: true);
            using var p = Op.Exp(_y!);
            using var ps = Op.Mul(p, s);
            inputGrads[0] = Op.Sub(g, ps);
            return;
        }
        using var gy = Op.Mul(g, _y!);
        using var sum = Op.Sum(gy, [axis], keepDims: true);
        using var d = Op.Sub(g, sum);
        inputGrads[0] = Op.Mul(_y!, d);
    }
}
