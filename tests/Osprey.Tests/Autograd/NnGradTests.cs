using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Tests.Support;

namespace Osprey.Tests.Autograd;

/// <summary>Finite-difference gradient checks of convolution, matrix product, pooling and resize (NCHW and NHWC).</summary>
public class NnGradTests
{
    public static TheoryData<string, int[], int[], Conv2dParams, bool> ConvCases() => new()
    {
        { "3x3 pad1", [2, 3, 5, 7], [4, 3, 3, 3], Conv2dParams.Square(1, 1), false },
        { "3x3 pad1 nhwc", [2, 3, 5, 7], [4, 3, 3, 3], Conv2dParams.Square(1, 1), true },
        { "stride2 pad1", [1, 3, 7, 6], [5, 3, 3, 3], Conv2dParams.Square(2, 1), false },
        { "stride2 nhwc", [1, 3, 7, 6], [5, 3, 3, 3], Conv2dParams.Square(2, 1), true },
        { "1x1", [2, 5, 3, 4], [3, 5, 1, 1], Conv2dParams.Square(), false },
        { "1x1 stride2", [1, 4, 5, 5], [3, 4, 1, 1], Conv2dParams.Square(2), false },
        { "dilation2", [1, 2, 7, 7], [3, 2, 3, 3], Conv2dParams.Square(1, 2, 2), false },
        { "groups2", [1, 4, 5, 5], [6, 2, 3, 3], Conv2dParams.Square(1, 1, 1, 2), false },
        { "depthwise", [1, 3, 5, 4], [3, 1, 3, 3], Conv2dParams.Square(1, 1, 1, 3), true },
        { "asymmetric", [1, 3, 6, 7], [2, 3, 2, 3], new Conv2dParams(2, 1, 1, 0, 1, 2), false },
        { "7x7 stride2 pad3", [1, 3, 9, 11], [2, 3, 7, 7], Conv2dParams.Square(2, 3), false },
    };

    [Theory]
    [MemberData(nameof(ConvCases))]
    public void Conv2d(string what, int[] xs, int[] ws, Conv2dParams p, bool nhwc)
    {
        using var x = Rand.Tensor(1, new Shape(xs));
        using var w = Rand.Tensor(2, new Shape(ws));
        GradCheck.Check($"conv2d {what}", t =>
        {
            using var xf = Op.Contiguous(t[0], nhwc ? MemoryFormat.ChannelsLast : MemoryFormat.Contiguous);
            return Op.Conv2d(xf, t[1], p);
        }, [x, w]);
    }

    [Theory]
    [InlineData(UnaryKind.Identity, false)]
    [InlineData(UnaryKind.Relu, false)]
    [InlineData(UnaryKind.Relu, true)]
    [InlineData(UnaryKind.Silu, false)]
    [InlineData(UnaryKind.Sigmoid, true)]
    public void Conv2d_with_fused_bias_residual_and_activation(UnaryKind act, bool nhwc)
    {
        // small convolution terms and a residual of magnitude 1.5 to 3 keep every pre-activation far from relu's kink
        using var x = Rand.Tensor(3, new Shape(2, 3, 5, 5), -0.2f, 0.2f);
        using var w = Rand.Tensor(4, new Shape(4, 3, 3, 3));
        using var b = Rand.Tensor(5, new Shape(4), -0.1f, 0.1f);
        using var r = GradCheck.AwayFromZero(6, new Shape(2, 4, 5, 5), -3f, 3f, 1.5f);
        GradCheck.Check($"conv2d+{act}", t =>
        {
            var f = nhwc ? MemoryFormat.ChannelsLast : MemoryFormat.Contiguous;
            using var xf = Op.Contiguous(t[0], f);
            using var rf = Op.Contiguous(t[3], f);
            return Op.Conv2d(xf, t[1], Conv2dParams.Square(1, 1), new Epilogue(t[2], rf, act));
        }, [x, w, b, r]);
    }

    public static TheoryData<int[], int[], bool, bool> MatMulCases() => new()
    {
        { [3, 4], [4, 5], false, false },
        { [4, 3], [4, 5], true, false },
        { [3, 4], [5, 4], false, true },
        { [4, 3], [5, 4], true, true },
        { [2, 3, 4], [4, 5], false, false },
        { [3, 4], [2, 4, 5], false, false },
        { [2, 3, 4], [2, 4, 5], false, false },
        { [2, 4, 3], [2, 5, 4], true, true },
        { [1, 3, 4], [2, 4, 5], false, false },
    };

    [Theory]
    [MemberData(nameof(MatMulCases))]
    public void MatMul(int[] sa, int[] sb, bool ta, bool tb)
    {
        using var a = Rand.Tensor(7, new Shape(sa));
        using var b = Rand.Tensor(8, new Shape(sb));
        GradCheck.Check("matmul", t => Op.MatMul(t[0], t[1], ta, tb), [a, b]);
    }

    [Fact]
    public void Linear_with_bias_and_fused_gelu()
    {
        using var x = Rand.Tensor(9, new Shape(3, 4));
        using var w = Rand.Tensor(10, new Shape(5, 4));
        using var b = Rand.Tensor(11, new Shape(5));
        GradCheck.Check("linear+gelu", t => Op.MatMul(t[0], t[1], transposeB: true, epilogue: new Epilogue(t[2], null, UnaryKind.Gelu)), [x, w, b]);
    }

    public static TheoryData<PoolKind, Pool2dParams, bool> PoolCases() => new()
    {
        { PoolKind.Max, Pool2dParams.Square(3, 2, 1), false },
        { PoolKind.Max, Pool2dParams.Square(3, 2, 1), true },
        { PoolKind.Max, Pool2dParams.Square(2, 2, 0, ceilMode: true), false },
        { PoolKind.Max, Pool2dParams.Square(3, 1, 1), false },
        { PoolKind.Avg, Pool2dParams.Square(3, 2, 1), false },
        { PoolKind.Avg, Pool2dParams.Square(3, 2, 1, countIncludePad: false), true },
        { PoolKind.Avg, Pool2dParams.Square(2, 2, 0, ceilMode: true), false },
        { PoolKind.Avg, new Pool2dParams(2, 3, 1, 2, 1, 1, true, false), false },
    };

    [Theory]
    [MemberData(nameof(PoolCases))]
    public void Pool2d(PoolKind kind, Pool2dParams p, bool nhwc)
    {
        using var x = GradCheck.Distinct(11, new Shape(2, 3, 7, 5));
        GradCheck.Check($"{kind} pool {p}", t =>
        {
            using var xf = Op.Contiguous(t[0], nhwc ? MemoryFormat.ChannelsLast : MemoryFormat.Contiguous);
            return Op.Pool2d(kind, xf, p);
        }, [x]);
    }

    [Theory]
    [InlineData(ResizeMode.Nearest, 10, 14, false)]
    [InlineData(ResizeMode.Nearest, 7, 9, true)]
    [InlineData(ResizeMode.Nearest, 3, 2, false)]
    [InlineData(ResizeMode.Bilinear, 10, 14, false)]
    [InlineData(ResizeMode.Bilinear, 8, 11, true)]
    [InlineData(ResizeMode.Bilinear, 3, 4, false)]
    public void Resize(ResizeMode mode, int oh, int ow, bool nhwc)
    {
        using var x = Rand.Tensor(12, new Shape(2, 3, 5, 7));
        GradCheck.Check($"{mode} {oh}x{ow}", t =>
        {
            using var xf = Op.Contiguous(t[0], nhwc ? MemoryFormat.ChannelsLast : MemoryFormat.Contiguous);
            return Op.Resize(xf, oh, ow, mode);
        }, [x]);
    }
}
