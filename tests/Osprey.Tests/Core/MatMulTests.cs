using Osprey.Core;
using Osprey.Core.Backends;
using Osprey.Core.Cpu;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Tests.Support;

namespace Osprey.Tests.Core;

/// <summary>MatMul against a naive float64 product on odd sizes, transposes, batch broadcast and fused epilogues.</summary>
[Trait("Category", "Simd")]
public class MatMulTests
{
    /// <summary>y[b] = act(op(a[b]) @ op(bm[b]) + bias + res[b]) in float64; a/bm batches broadcast when 1.</summary>
    private static float[] Reference(float[] a, int ba, float[] bm, int bb, int m, int k, int n, bool ta, bool tb,
        float[]? bias = null, float[]? res = null, UnaryOp act = default)
    {
        int batch = Math.Max(ba, bb);
        var y = new float[batch * m * n];
        for (int z = 0; z < batch; z++)
        {
            int ao = (ba == 1 ? 0 : z) * m * k, bo = (bb == 1 ? 0 : z) * k * n;
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    double s = 0;
                    for (int p = 0; p < k; p++)
                        s += (double)a[ao + (ta ? p * m + i : i * k + p)] * bm[bo + (tb ? j * k + p : p * n + j)];
                    int yi = (z * m + i) * n + j;
                    if (bias is not null) s += bias[j];
                    if (res is not null) s += res[yi];
                    y[yi] = Activation.Apply(act, (float)s);
                }
        }
        return y;
    }

    private static double Tol(int k) => 1e-5 * Math.Sqrt(Math.Max(k, 1)) * 4;

    public static TheoryData<int, int, int> OddSizes() => new()
    {
        { 1, 1, 1 }, { 1, 7, 13 }, { 7, 13, 1 }, { 13, 1, 7 }, { 7, 67, 13 }, { 67, 129, 13 }, { 13, 257, 67 },
        { 129, 67, 257 }, { 257, 13, 129 }, { 67, 257, 129 }, { 257, 257, 1 }, { 1, 257, 257 }, { 129, 300, 67 },
    };

    [Theory]
    [MemberData(nameof(OddSizes))]
    public void Matches_float64_reference_on_odd_sizes(int m, int k, int n)
    {
        float[] a = Rand.Floats(m * 31 + k, m * k), b = Rand.Floats(n * 17 + k, k * n);
        using var ta = Tensor.FromArray(a, m, k);
        using var tb = Tensor.FromArray(b, k, n);
        using var y = Op.MatMul(ta, tb);
        Assert.Equal(new Shape(m, n), y.Shape);
        Close.Assert(Reference(a, 1, b, 1, m, k, n, false, false), y.ToArray<float>(), Tol(k), 1e-5, $"{m}x{k}x{n}");
    }

    [Fact]
    public void Large_product_splits_over_threads_and_blocks()
    {
        // K > KC (256) and N > NC (1024) so every loop of the blocked product runs more than once
        int m = 37, k = 600, n = 1100;
        float[] a = Rand.Floats(1, m * k), b = Rand.Floats(2, k * n), bias = Rand.Floats(3, n);
        using var ta = Tensor.FromArray(a, m, k);
        using var tb = Tensor.FromArray(b, k, n);
        using var tbias = Tensor.FromArray(bias, n);
        using var y = Op.MatMul(ta, tb, epilogue: new Epilogue(tbias, null, UnaryKind.Relu));
        Close.Assert(Reference(a, 1, b, 1, m, k, n, false, false, bias, null, UnaryKind.Relu), y.ToArray<float>(), Tol(k), 1e-5, "37x600x1100");
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void Transposes(bool transA, bool transB)
    {
        int m = 67, k = 13, n = 129;
        float[] a = Rand.Floats(5, m * k), b = Rand.Floats(6, k * n);
        using var ta = transA ? Tensor.FromArray(a, k, m) : Tensor.FromArray(a, m, k);
        using var tb = transB ? Tensor.FromArray(b, n, k) : Tensor.FromArray(b, k, n);
        using var y = Op.MatMul(ta, tb, transA, transB);
        Close.Assert(Reference(a, 1, b, 1, m, k, n, transA, transB), y.ToArray<float>(), Tol(k), 1e-5, $"tA={transA} tB={transB}");
    }

    /// <summary>Packing transposes 8x8 and 4x4 blocks and then scalars: sizes with every kind of remainder, K over one KC block.</summary>
    [Theory]
    [InlineData(29, 300, 45, false, true)]
    [InlineData(29, 300, 45, true, false)]
    [InlineData(12, 19, 33, false, true)]
    [InlineData(23, 7, 70, false, false)]
    [InlineData(5, 531, 3, true, true)]
    public void Transposes_with_partial_transpose_blocks(int m, int k, int n, bool transA, bool transB)
    {
        float[] a = Rand.Floats(m + 7 * k, m * k), b = Rand.Floats(n + 3 * k, k * n);
        using var ta = transA ? Tensor.FromArray(a, k, m) : Tensor.FromArray(a, m, k);
        using var tb = transB ? Tensor.FromArray(b, n, k) : Tensor.FromArray(b, k, n);
        using var y = Op.MatMul(ta, tb, transA, transB);
        Close.Assert(Reference(a, 1, b, 1, m, k, n, transA, transB), y.ToArray<float>(), Tol(k), 1e-5, $"{m}x{k}x{n} tA={transA} tB={transB}");
    }

    [Theory]
    [InlineData(3, 3, false)]
    [InlineData(3, 1, false)]
    [InlineData(1, 3, false)]
    [InlineData(3, 1, true)]
    [InlineData(1, 4, true)]
    public void Batches_broadcast(int ba, int bb, bool transA)
    {
        int m = 13, k = 7, n = 67;
        float[] a = Rand.Floats(7, ba * m * k), b = Rand.Floats(8, bb * k * n);
        using var ta = transA ? Tensor.FromArray(a, ba, k, m) : Tensor.FromArray(a, ba, m, k);
        using var tb = Tensor.FromArray(b, bb, k, n);
        using var y = Op.MatMul(ta, tb, transA);
        Assert.Equal(new Shape(Math.Max(ba, bb), m, n), y.Shape);
        Close.Assert(Reference(a, ba, b, bb, m, k, n, transA, false), y.ToArray<float>(), Tol(k), 1e-5, $"batch {ba} x {bb}");
    }

    [Fact]
    public void Three_d_times_two_d_broadcasts_the_matrix()
    {
        int batch = 4, m = 7, k = 13, n = 129;
        float[] a = Rand.Floats(9, batch * m * k), b = Rand.Floats(10, k * n), bias = Rand.Floats(11, n), r = Rand.Floats(12, batch * m * n);
        using var ta = Tensor.FromArray(a, batch, m, k);
        using var tb = Tensor.FromArray(b, k, n);
        using var tbias = Tensor.FromArray(bias, n);
        using var tr = Tensor.FromArray(r, batch, m, n);
        using var y = Op.MatMul(ta, tb, epilogue: new Epilogue(tbias, tr, UnaryKind.Relu));
        Close.Assert(Reference(a, batch, b, 1, m, k, n, false, false, bias, r, UnaryKind.Relu), y.ToArray<float>(), Tol(k), 1e-5, "[4,7,13]@[13,129]");
    }

    public static TheoryData<UnaryKind> Kinds()
    {
        var d = new TheoryData<UnaryKind>();
        foreach (var k in Enum.GetValues<UnaryKind>()) d.Add(k);
        return d;
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Epilogue_bias_residual_and_every_activation(UnaryKind kind)
    {
        int m = 13, k = 67, n = 33;
        var act = kind switch
        {
            UnaryKind.LeakyRelu => UnaryOp.LeakyRelu(0.2f),
            UnaryKind.Clamp => UnaryOp.Clamp(-0.3f, 0.4f),
            _ => new UnaryOp(kind),
        };
        float[] a = Rand.Floats(13, m * k), b = Rand.Floats(14, k * n), bias = Rand.Floats(15, n), r = Rand.Floats(16, m * n);
        using var ta = Tensor.FromArray(a, m, k);
        using var tb = Tensor.FromArray(b, k, n);
        using var tbias = Tensor.FromArray(bias, n);
        using var tr = Tensor.FromArray(r, m, n);
        using var y = Op.MatMul(ta, tb, epilogue: new Epilogue(tbias, tr, act));
        Close.Assert(Reference(a, 1, b, 1, m, k, n, false, false, bias, r, act), y.ToArray<float>(), Tol(k), 1e-4, kind.ToString());
    }

    [Fact]
    public void Empty_inner_dimension_gives_the_epilogue_of_zero()
    {
        using var a = Tensor.Zeros(new Shape(7, 0));
        using var b = Tensor.Zeros(new Shape(0, 13));
        using var bias = Tensor.FromArray(Rand.Floats(17, 13), 13);
        using var y = Op.MatMul(a, b, epilogue: new Epilogue(bias, null, UnaryKind.Relu));
        float[] bs = bias.ToArray<float>(), got = y.ToArray<float>();
        for (int i = 0; i < 7 * 13; i++) Assert.Equal(Math.Max(bs[i % 13], 0f), got[i]);
    }

    [Fact]
    public void Linear_matches_reference()
    {
        float[] x = Rand.Floats(18, 5 * 257), w = Rand.Floats(19, 10 * 257), bias = Rand.Floats(20, 10);
        using var tx = Tensor.FromArray(x, 5, 257);
        using var tw = Tensor.FromArray(w, 10, 257);
        using var tbias = Tensor.FromArray(bias, 10);
        using var y = Op.Linear(tx, tw, tbias);
        Close.Assert(Reference(x, 1, w, 1, 5, 257, 10, false, true, bias), y.ToArray<float>(), Tol(257), 1e-5, "linear");
    }

    [Theory]
    [InlineData(DType.Float16, 1e-2)]
    [InlineData(DType.BFloat16, 4e-2)]
    public void Half_precision_inputs(DType dtype, double tol)
    {
        int m = 13, k = 67, n = 7;
        float[] a = Conv2dTests.Round(Rand.Floats(21, m * k), dtype), b = Conv2dTests.Round(Rand.Floats(22, k * n), dtype);
        using var ta = Conv2dTests.HalfTensor(a, dtype, new Shape(m, k));
        using var tb = Conv2dTests.HalfTensor(b, dtype, new Shape(k, n));
        using var y = Op.MatMul(ta, tb);
        Assert.Equal(dtype, y.DType);
        Close.Assert(Reference(a, 1, b, 1, m, k, n, false, false), Conv2dTests.ToFloats(y), tol, tol, dtype.Name());
    }

    [Fact]
    public void Mismatched_inner_dimensions_name_the_op_and_shapes()
    {
        using var a = Tensor.Zeros(new Shape(3, 4));
        using var b = Tensor.Zeros(new Shape(5, 6));
        var e = Assert.Throws<OpArgumentException>(() => Op.MatMul(a, b));
        Assert.Contains("matmul", e.Message);
        Assert.Contains("[3, 4]", e.Message);
        Assert.Contains("[5, 6]", e.Message);
    }

    [Fact]
    public void Non_broadcasting_batches_are_rejected()
    {
        using var a = Tensor.Zeros(new Shape(2, 3, 4));
        using var b = Tensor.Zeros(new Shape(3, 4, 5));
        var e = Assert.Throws<OpArgumentException>(() => Op.MatMul(a, b));
        Assert.Contains("matmul", e.Message);
        Assert.Contains("batch", e.Message);
    }

    [Fact]
    public void Kernel_name_reports_the_simd_path()
    {
        string name = CpuBackend.GemmKernel;
        Assert.False(string.IsNullOrEmpty(name));
    }
}
