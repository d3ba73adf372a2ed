using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using static Osprey.Tests.Cuda.MatMulConvSupport;

namespace Osprey.Tests.Cuda;

/// <summary>CudaBackend.MatMul (cuBLASLt) against the CPU backend on seeded inputs, awkward shapes and every epilogue.</summary>
[Collection(GpuCollection.Name)]
public class MatMulGpuTests
{
    public enum Epi { None, Bias, Relu, BiasRelu, Residual, BiasResidualRelu, Gelu, BiasSilu }

    // batchA, batchB, m, k, n, transposeA, transposeB
    public static readonly TheoryData<int, int, int, int, int, bool, bool> Shapes = new()
    {
        { 1, 1, 1, 1, 1, false, false },
        { 1, 1, 17, 31, 13, false, false },
        { 1, 1, 129, 257, 67, false, false },
        { 1, 1, 129, 257, 67, true, false },
        { 1, 1, 129, 257, 67, false, true },
        { 1, 1, 61, 37, 97, true, true },
        { 1, 1, 64, 128, 64, false, false },
        { 3, 3, 7, 11, 5, false, false },
        { 2, 2, 5, 7, 3, true, true },
        { 4, 1, 33, 17, 9, false, false },   // b broadcast: folded into one product of 132 rows
        { 5, 1, 6, 7, 8, true, false },      // b broadcast with aᵀ: batch stride 0 on b
        { 1, 5, 9, 13, 7, false, false },    // a broadcast: batch stride 0 on a
        { 1, 1, 1, 300, 1, false, true },
    };

    public static IEnumerable<object[]> ShapesByDType()
    {
        foreach (var dtype in new[] { DType.Float32, DType.Float16, DType.BFloat16 })
            foreach (var row in Shapes)
                yield return [dtype, .. row];
    }

    [GpuTheory]
    [MemberData(nameof(ShapesByDType))]
    public void MatMul_matches_cpu(DType dtype, int ba, int bb, int m, int k, int n, bool ta, bool tb) =>
        Check(dtype, ba, bb, m, k, n, ta, tb, Epi.None, seed: m * 131 + k * 7 + n);

    public static IEnumerable<object[]> Epilogues()
    {
        foreach (var dtype in new[] { DType.Float32, DType.Float16 })
            foreach (Epi e in Enum.GetValues<Epi>())
            {
                yield return [dtype, e, 1, 1, 37, 53, 29, false, true];
                yield return [dtype, e, 3, 3, 19, 24, 41, false, false];
                yield return [dtype, e, 2, 1, 13, 9, 70, false, false];
            }
    }

    [GpuTheory]
    [MemberData(nameof(Epilogues))]
    public void MatMul_epilogues_match_cpu(DType dtype, Epi epi, int ba, int bb, int m, int k, int n, bool ta, bool tb) =>
        Check(dtype, ba, bb, m, k, n, ta, tb, epi, seed: 1000 + (int)epi);

    [GpuTheory]
    [InlineData(0, 5, 3)]
    [InlineData(4, 5, 0)]
    [InlineData(4, 0, 3)] // empty reduction: y = act(bias + residual)
    public void MatMul_empty_dimensions(int m, int k, int n)
    {
        Check(DType.Float32, 1, 1, m, k, n, false, false, Epi.None, seed: 5);
        Check(DType.Float32, 2, 2, m, k, n, false, false, Epi.BiasResidualRelu, seed: 6);
        Check(DType.Float16, 1, 1, m, k, n, false, false, Epi.BiasSilu, seed: 7);
    }

    [GpuFact]
    public void MatMul_2d_operands_and_linear()
    {
        const int b = 7, i = 23, o = 11;
        var xv = Values(1, b * i, DType.Float32);
        var wv = Values(2, o * i, DType.Float32);
        var bv = Values(3, o, DType.Float32);
        using var xc = Cpu(xv, new Shape(b, i));
        using var wc = Cpu(wv, new Shape(o, i));
        using var bc = Cpu(bv, new Shape(o));
        using var expected = Op.Linear(xc, wc, bc);
        using var xg = OnGpu(xv, new Shape(b, i), DType.Float32);
        using var wg = OnGpu(wv, new Shape(o, i), DType.Float32);
        using var bg = OnGpu(bv, new Shape(o), DType.Float32);
        using var y = Op.Linear(xg, wg, bg);
        Assert.Equal(new Shape(b, o), y.Shape);
        AssertClose(expected.ToArray<float>(), y, DType.Float32, i, "linear");
    }

    [GpuFact]
    public void MatMul_does_not_leak_over_thousands_of_calls()
    {
        var backend = BackendRegistry.Get(Gpu.Device);
        var av = Values(1, 3 * 17 * 13, DType.Float16);
        var bv = Values(2, 13 * 9, DType.Float16);
        var cv = Values(3, 9, DType.Float16);
        var rv = Values(4, 3 * 17 * 9, DType.Float16);
        using var a = OnGpu(av, new Shape(3, 17, 13), DType.Float16);
        using var b = OnGpu(bv, new Shape(13, 9), DType.Float16);
        using var bias = OnGpu(cv, new Shape(9), DType.Float16);
        using var res = OnGpu(rv, new Shape(3, 17, 9), DType.Float16);
        // bias + residual + ReLU all inside cuBLASLt (and a workspace per call from the allocator)
        var epi = new Epilogue(bias, res, UnaryKind.Relu);
        using (Op.MatMul(a, b, epilogue: epi)) { }
        backend.Synchronize();
        long live = backend.Memory.LiveBytes, allocations = backend.Memory.LiveAllocations;
        for (int i = 0; i < 3000; i++)
            using (Op.MatMul(a, b, epilogue: epi)) { }
        backend.Synchronize();
        Assert.Equal(live, backend.Memory.LiveBytes);
        Assert.Equal(allocations, backend.Memory.LiveAllocations);
    }

    internal static void Check(DType dtype, int ba, int bb, int m, int k, int n, bool ta, bool tb, Epi epi, int seed)
    {
        int batch = Math.Max(ba, bb);
        var aShape = ta ? new Shape(ba, k, m) : new Shape(ba, m, k);
        var bShape = tb ? new Shape(bb, n, k) : new Shape(bb, k, n);
        var av = Values(seed, aShape.Numel, dtype);
        var bv = Values(seed + 1, bShape.Numel, dtype);
        bool hasBias = epi is Epi.Bias or Epi.BiasRelu or Epi.BiasResidualRelu or Epi.BiasSilu;
        bool hasRes = epi is Epi.Residual or Epi.BiasResidualRelu;
        UnaryOp act = epi switch
        {
            Epi.Relu or Epi.BiasRelu or Epi.BiasResidualRelu => UnaryKind.Relu,
            Epi.Gelu => UnaryKind.Gelu,
            Epi.BiasSilu => UnaryKind.Silu,
            _ => UnaryOp.None,
        };
        var biasV = hasBias ? Values(seed + 2, n, dtype) : null;
        var resV = hasRes ? Values(seed + 3, (long)batch * m * n, dtype) : null;
        var yShape = new Shape(batch, m, n);

        float[] expected;
        {
            using var ac = Cpu(av, aShape);
            using var bc = Cpu(bv, bShape);
            using var biasC = biasV is null ? null : Cpu(biasV, new Shape(n));
            using var resC = resV is null ? null : Cpu(resV, yShape);
            using var yc = Op.MatMul(ac, bc, ta, tb, new Epilogue(biasC, resC, act));
            expected = yc.ToArray<float>();
        }
        using var ag = OnGpu(av, aShape, dtype);
        using var bg = OnGpu(bv, bShape, dtype);
        using var biasG = biasV is null ? null : OnGpu(biasV, new Shape(n), dtype);
        using var resG = resV is null ? null : OnGpu(resV, yShape, dtype);
        Poison(yShape.Numel, dtype);
        using var y = Op.MatMul(ag, bg, ta, tb, new Epilogue(biasG, resG, act));
        Assert.Equal(yShape, y.Shape);
        Assert.Equal(dtype, y.DType);
        AssertClose(expected, y, dtype, k + (hasBias ? 1 : 0) + (hasRes ? 1 : 0),
            $"matmul {dtype.Name()} a{aShape}{(ta ? "ᵀ" : "")} b{bShape}{(tb ? "ᵀ" : "")} {epi}");
    }
}
