using Osprey.Core.Autograd;
using Osprey.Core.Backends;
using Osprey.Core.Tensors;

namespace Osprey.Core.Ops;

public static partial class Op
{
    /// <summary>
    /// 2-D convolution, as torch.nn.functional.conv2d, with an optional fused epilogue
    /// (bias [O], residual shaped like the output, activation). x in NCHW or NHWC; the output keeps x's format.
    /// </summary>
    public static Tensor Conv2d(Tensor x, Tensor weight, Conv2dParams? p = null, Epilogue? epilogue = null)
    {
        p ??= new Conv2dParams();
        epilogue ??= Epilogue.None;
        SameDevice("conv2d", x, weight);
        SameDType("conv2d", x, weight);
        RequireFloat("conv2d", x);
        RequireRank("conv2d", x, 4);
        RequireRank("conv2d", weight, 4, "weight");
        int n = x.Shape[0], c = x.Shape[1], h = x.Shape[2], w = x.Shape[3];
        int o = weight.Shape[0], cg = weight.Shape[1], kh = weight.Shape[2], kw = weight.Shape[3];
        if (p.Groups < 1 || c % p.Groups != 0 || o % p.Groups != 0 || cg != c / p.Groups)
            OpArgumentException.Throw("conv2d", $"input {x.Shape} and weight {weight.Shape} do not fit groups={p.Groups}");
        if (p.StrideH < 1 || p.StrideW < 1 || p.DilationH < 1 || p.DilationW < 1 || p.PadH < 0 || p.PadW < 0)
            OpArgumentException.Throw("conv2d", $"invalid geometry {p}");
        int oh = p.OutH(h, kh), ow = p.OutW(w, kw);
        if (oh <= 0 || ow <= 0)
            OpArgumentException.Throw("conv2d", $"kernel {kh}x{kw} (dilation {p.DilationH}x{p.DilationW}, padding {p.PadH}x{p.PadW}) is larger than input {x.Shape}");
        var outShape = new Shape(n, o, oh, ow);
        CheckEpilogue("conv2d", x, epilogue, o, outShape);
        using var xd = Dense4D(x);
        var format = xd.IsContiguous() ? MemoryFormat.Contiguous : MemoryFormat.ChannelsLast;
        using var wd = Dense(weight, format);
        var y = EmptyLike(x, outShape, format: format);
        x.Backend.Conv2d(xd, wd, p, epilogue, y);
        if (GradTape.Active is { } tape) tape.Record(new Conv2dNode(p, epilogue.Activation), y, x, weight, epilogue.Bias, epilogue.Residual);
        return y;
    }

    private static void CheckEpilogue(string op, Tensor x, Epilogue e, int channels, Shape outShape)
    {
        if (e.Bias is { } b)
        {
            SameDevice(op, x, b);
            SameDType(op, x, b);
            if (b.Rank != 1 || b.Shape[0] != channels) OpArgumentException.Throw(op, $"bias must be [{channels}], got {b.Shape}");
        }
        if (e.Residual is { } r)
        {
            SameDevice(op, x, r);
            SameDType(op, x, r);
            if (r.Shape != outShape) OpArgumentException.Throw(op, $"residual must be {outShape}, got {r.Shape}");
        }
    }

    /// <summary>
    /// Matrix product with broadcasting over leading batch dimensions, as torch.matmul for 2-D and 3-D
    /// operands: [M,K]@[K,N], [B,M,K]@[K,N], [B,M,K]@[B,K,N]. Optional fused epilogue (bias [N]).
    /// </summary>
    public static Tensor MatMul(Tensor a, Tensor b, bool transposeA = false, bool transposeB = false, Epilogue? epilogue = null)
    {
        epilogue ??= Epilogue.None;
        SameDevice("matmul", a, b);
        SameDType("matmul", a, b);
        RequireFloat("matmul", a);
        if (a.Rank is < 2 or > 3 || b.Rank is < 2 or > 3)
            OpArgumentException.Throw("matmul", $"operands must be 2-D or 3-D, got {a.Shape} and {b.Shape}");
        int ba = a.Rank == 3 ? a.Shape[0] : 1, bb = b.Rank == 3 ? b.Shape[0] : 1;
        int m = transposeA ? a.Shape[-1] : a.Shape[-2], ka = transposeA ? a.Shape[-2] : a.Shape[-1];
        int kb = transposeB ? b.Shape[-1] : b.Shape[-2], n = transposeB ? b.Shape[-2] : b.Shape[-1];
        if (ka != kb) OpArgumentException.Throw("matmul", $"inner dimensions differ: {a.Shape}{(transposeA ? "ᵀ" : "")} @ {b.Shape}{(transposeB ? "ᵀ" : "")}");
        if (ba != bb && ba != 1 && bb != 1) OpArgumentException.Throw("matmul", $"batch dimensions {ba} and {bb} do not broadcast");
        int batch = Math.Max(ba, bb);
        var outShape = a.Rank == 2 && b.Rank == 2 ? new Shape(m, n) : new Shape(batch, m, n);
        CheckEpilogue("matmul", a, epilogue, n, outShape);
        using var a3 = To3D(a);
        using var b3 = To3D(b);
        var y = EmptyLike(a, outShape);
        using var y3 = y.Reshape(batch, m, n);
        Epilogue e3 = epilogue;
        Tensor? r3 = epilogue.Residual?.Reshape(batch, m, n);
        if (r3 is not null) e3 = epilogue with { Residual = r3 };
        try { a.Backend.MatMul(a3, b3, transposeA, transposeB, e3, y3); }
        finally { r3?.Dispose(); }
        if (GradTape.Active is { } tape) tape.Record(new MatMulNode(transposeA, transposeB, epilogue.Activation), y, a, b, epilogue.Bias, epilogue.Residual);
        return y;
    }

    private static Tensor To3D(Tensor t)
    {
        using var c = Dense(t);
        return t.Rank == 3 ? c.ShareView() : c.Reshape(1, t.Shape[0], t.Shape[1]);
    }

    /// <summary>Fully connected layer: x [B, in] @ weightᵀ ([out, in]) + bias, as torch.nn.Linear.</summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias = null) =>
        MatMul(x, weight, transposeB: true, epilogue: new Epilogue(bias));

    public static Tensor MaxPool2d(Tensor x, Pool2dParams p) => Pool2d(PoolKind.Max, x, p);
    public static Tensor AvgPool2d(Tensor x, Pool2dParams p) => Pool2d(PoolKind.Avg, x, p);

    public static Tensor Pool2d(PoolKind kind, Tensor x, Pool2dParams p)
    {
        string op = kind == PoolKind.Max ? "max_pool2d" : "avg_pool2d";
        x.ThrowIfDisposed();
        RequireFloat(op, x);
        RequireRank(op, x, 4);
        if (p.KernelH < 1 || p.KernelW < 1 || p.StrideH < 1 || p.StrideW < 1)
            OpArgumentException.Throw(op, $"invalid geometry {p}");
        if (p.PadH * 2 > p.KernelH || p.PadW * 2 > p.KernelW)
            OpArgumentException.Throw(op, $"padding {p.PadH}x{p.PadW} must be at most half the kernel {p.KernelH}x{p.KernelW}");
        int oh = p.OutH(x.Shape[2]), ow = p.OutW(x.Shape[3]);
        if (oh <= 0 || ow <= 0) OpArgumentException.Throw(op, $"kernel {p.KernelH}x{p.KernelW} is larger than input {x.Shape}");
        using var xd = Dense4D(x);
        var y = EmptyLike(x, new Shape(x.Shape[0], x.Shape[1], oh, ow), format: FormatOf(xd));
        x.Backend.Pool2d(kind, xd, p, y);
        if (GradTape.Active is { } tape) tape.Record(new Pool2dNode(kind, p), y, x);
        return y;
    }

    /// <summary>Mean over H and W, keeping them as size 1: [N, C, 1, 1].</summary>
    public static Tensor GlobalAvgPool(Tensor x)
    {
        RequireRank("global_avg_pool", x, 4);
        return Reduce(ReduceOp.Mean, x, [2, 3], keepDims: true);
    }

    /// <summary>torch.nn.functional.interpolate(x, size=(h, w), mode, align_corners=False) for [N, C, H, W].</summary>
    public static Tensor Resize(Tensor x, int height, int width, ResizeMode mode)
    {
        string op = mode == ResizeMode.Nearest ? "interpolate_nearest" : "interpolate_bilinear";
        x.ThrowIfDisposed();
        RequireFloat(op, x);
        RequireRank(op, x, 4);
        if (height <= 0 || width <= 0) OpArgumentException.Throw(op, $"output size {height}x{width} must be positive");
        if (x.Shape[2] == 0 || x.Shape[3] == 0) OpArgumentException.Throw(op, $"empty input {x.Shape}");
        using var xd = Dense4D(x);
        var y = EmptyLike(x, new Shape(x.Shape[0], x.Shape[1], height, width), format: FormatOf(xd));
        x.Backend.Resize(mode, xd, y);
        if (GradTape.Active is { } tape) tape.Record(new ResizeNode(mode), y, x);
        return y;
    }

    /// <summary>Convolution weights and bias with an inference batch norm folded in: w' = w * scale[o], b' = (b - mean) * scale + beta.</summary>
    public static (Tensor Weight, Tensor Bias) FoldBatchNorm(Tensor convWeight, Tensor? convBias,
        Tensor bnWeight, Tensor bnBias, Tensor runningMean, Tensor runningVar, float eps = 1e-5f)
    {
        int o = convWeight.Shape[0];
        var (scale, shift) = BatchNormScaleShift(bnWeight, bnBias, runningMean, runningVar, eps);
        using (scale)
        using (shift)
        {
            if (scale.Shape[0] != o) OpArgumentException.Throw("fold_batch_norm", $"batch norm has {scale.Shape[0]} channels, convolution {convWeight.Shape} has {o}");
            using var s4 = scale.Reshape(o, 1, 1, 1);
            var w = Mul(convWeight, s4);
            Tensor b;
            if (convBias is null) b = shift.Share();
            else
            {
                using var bs = Mul(convBias, scale);
                b = Add(bs, shift);
            }
            return (w, b);
        }
    }
}
