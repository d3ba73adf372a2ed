using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using static Osprey.Tests.Cuda.MatMulConvSupport;

namespace Osprey.Tests.Cuda;

/// <summary>CudaBackend.Conv2d (cuDNN) against the CPU backend: NCHW and NHWC, fp32/fp16/bf16, groups, dilation, epilogues.</summary>
[Collection(GpuCollection.Name)]
public class ConvGpuTests
{
    public enum Epi { None, Bias, BiasRelu, BiasResidualRelu, ResidualRelu, BiasSigmoid, Relu6 }

    // n, c, h, w, o, kh, kw, strideH, strideW, pad, dilation, groups
    private static readonly int[][] Geometries =
    [
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1],
        [2, 3, 23, 19, 8, 7, 7, 2, 2, 3, 1, 1],      // stem-like, odd size
        [3, 16, 13, 13, 32, 1, 1, 1, 1, 0, 1, 1],    // 1x1
        [2, 13, 11, 17, 7, 3, 3, 1, 1, 1, 1, 1],     // prime channels
        [2, 32, 15, 15, 64, 3, 3, 2, 2, 1, 1, 1],    // 3x3/2
        [2, 24, 9, 10, 24, 3, 3, 1, 1, 1, 1, 24],    // depthwise
        [1, 12, 8, 9, 20, 3, 3, 1, 1, 2, 2, 4],      // grouped + dilated
        [2, 8, 10, 7, 6, 3, 1, 2, 1, 1, 1, 2],       // non-square kernel and stride
        [1, 64, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1],
        [5, 5, 6, 6, 3, 5, 5, 1, 1, 0, 1, 1],
    ];

    public static IEnumerable<object[]> Cases()
    {
        foreach (var dtype in new[] { DType.Float32, DType.Float16 })
            foreach (var nhwc in new[] { false, true })
                foreach (var g in Geometries)
                    yield return [dtype, nhwc, .. g.Cast<object>()];
    }

    [GpuTheory]
    [MemberData(nameof(Cases))]
    public void Conv2d_matches_cpu(DType dtype, bool nhwc, int n, int c, int h, int w, int o, int kh, int kw, int sh, int sw, int pad, int dil, int groups) =>
        Check(dtype, nhwc, n, c, h, w, o, kh, kw, new Conv2dParams(sh, sw, pad, pad, dil, dil, groups), Epi.None, seed: c * 17 + o);

    public static IEnumerable<object[]> EpilogueCases()
    {
        foreach (var dtype in new[] { DType.Float32, DType.Float16 })
            foreach (var nhwc in new[] { false, true })
                foreach (Epi e in Enum.GetValues<Epi>())
                    yield return [dtype, nhwc, e];
    }

    [GpuTheory]
    [MemberData(nameof(EpilogueCases))]
    public void Conv2d_epilogues_match_cpu(DType dtype, bool nhwc, Epi epi)
    {
        Check(dtype, nhwc, 2, 16, 12, 11, 24, 3, 3, Conv2dParams.Square(1, 1), epi, seed: 50 + (int)epi);
        Check(dtype, nhwc, 3, 32, 7, 7, 64, 1, 1, Conv2dParams.Square(2, 0), epi, seed: 60 + (int)epi);
    }

    [GpuTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void Conv2d_bfloat16(bool nhwc) =>
        Check(DType.BFloat16, nhwc, 2, 16, 9, 9, 32, 3, 3, Conv2dParams.Square(1, 1), Epi.BiasRelu, seed: 3);

    [GpuFact]
    public void Conv2d_empty_batch_and_empty_channels()
    {
        Check(DType.Float32, true, 0, 8, 5, 5, 4, 3, 3, Conv2dParams.Square(1, 1), Epi.BiasRelu, seed: 1);
        Check(DType.Float32, false, 2, 0, 5, 5, 4, 3, 3, Conv2dParams.Square(1, 1), Epi.BiasResidualRelu, seed: 2);
    }

    [GpuFact]
    public void Conv2d_fp16_nhwc_bias_relu_residual_runs_fused()
    {
        var backend = Gpu.Backend;
        long before = backend.ConvFusedFallbacks;
        Check(DType.Float16, true, 4, 64, 14, 14, 64, 3, 3, Conv2dParams.Square(1, 1), Epi.BiasResidualRelu, seed: 9);
        Check(DType.Float16, true, 4, 64, 14, 14, 256, 1, 1, Conv2dParams.Square(1, 0), Epi.BiasRelu, seed: 10);
        Assert.Equal(before, backend.ConvFusedFallbacks);
        // the plan that ran computes the epilogue inside cuDNN's graph
        using var x = OnGpu(Values(1, 4 * 64 * 14 * 14, DType.Float16), new Shape(4, 64, 14, 14), DType.Float16, MemoryFormat.ChannelsLast);
        using var w = OnGpu(Values(2, 64 * 64 * 9, DType.Float16), new Shape(64, 64, 3, 3), DType.Float16, MemoryFormat.ChannelsLast);
        var choice = backend.ConvChoiceFor(x, w, Conv2dParams.Square(1, 1),
            Osprey.Cuda.Dnn.ConvFusion.Bias | Osprey.Cuda.Dnn.ConvFusion.Residual | Osprey.Cuda.Dnn.ConvFusion.Relu);
        Assert.NotNull(choice);
        Assert.Contains("fused", choice.Value.Engine, StringComparison.Ordinal);
    }

    [GpuFact]
    public void Conv2d_does_not_leak_over_thousands_of_calls()
    {
        var backend = BackendRegistry.Get(Gpu.Device);
        var xv = Values(1, 2 * 8 * 9 * 9, DType.Float16);
        var wv = Values(2, 16 * 8 * 3 * 3, DType.Float16);
        var bv = Values(3, 16, DType.Float16);
        using var x = OnGpu(xv, new Shape(2, 8, 9, 9), DType.Float16, MemoryFormat.ChannelsLast);
        using var wt = OnGpu(wv, new Shape(16, 8, 3, 3), DType.Float16, MemoryFormat.ChannelsLast);
        using var b = OnGpu(bv, new Shape(16), DType.Float16);
        var p = Conv2dParams.Square(1, 1);
        // fp16 NHWC through a fused cuDNN graph (bias + ReLU), a workspace per call from the allocator
        var epi = new Epilogue(b, null, UnaryKind.Relu);
        using (Op.Conv2d(x, wt, p, epi)) { }
        backend.Synchronize();
        long live = backend.Memory.LiveBytes, allocations = backend.Memory.LiveAllocations;
        for (int i = 0; i < 3000; i++)
            using (Op.Conv2d(x, wt, p, epi)) { }
        backend.Synchronize();
        Assert.Equal(live, backend.Memory.LiveBytes);
        Assert.Equal(allocations, backend.Memory.LiveAllocations);

        // exact fp32 NCHW: the legacy API's fused bias + ReLU
        using var x32 = OnGpu(Values(5, 2 * 8 * 9 * 9, DType.Float32), new Shape(2, 8, 9, 9), DType.Float32);
        using var w32 = OnGpu(Values(6, 16 * 8 * 3 * 3, DType.Float32), new Shape(16, 8, 3, 3), DType.Float32);
        using var b32 = OnGpu(Values(7, 16, DType.Float32), new Shape(16), DType.Float32);
        var epi32 = new Epilogue(b32, null, UnaryKind.Relu);
        using (Op.Conv2d(x32, w32, p, epi32)) { }
        backend.Synchronize();
        live = backend.Memory.LiveBytes;
        allocations = backend.Memory.LiveAllocations;
        for (int i = 0; i < 2000; i++)
            using (Op.Conv2d(x32, w32, p, epi32)) { }
        backend.Synchronize();
        Assert.Equal(live, backend.Memory.LiveBytes);
        Assert.Equal(allocations, backend.Memory.LiveAllocations);
    }

    internal static void Check(DType dtype, bool nhwc, int n, int c, int h, int w, int o, int kh, int kw, Conv2dParams p, Epi epi, int seed)
    {
        var format = nhwc ? MemoryFormat.ChannelsLast : MemoryFormat.Contiguous;
        var xShape = new Shape(n, c, h, w);
        var wShape = new Shape(o, c / p.Groups, kh, kw);
        var yShape = new Shape(n, o, p.OutH(h, kh), p.OutW(w, kw));
        var xv = Values(seed, xShape.Numel, dtype);
        var wv = Values(seed + 1, wShape.Numel, dtype);
        bool hasBias = epi is Epi.Bias or Epi.BiasRelu or Epi.BiasResidualRelu or Epi.BiasSigmoid;
        bool hasRes = epi is Epi.BiasResidualRelu or Epi.ResidualRelu;
        UnaryOp act = epi switch
        {
            Epi.BiasRelu or Epi.BiasResidualRelu or Epi.ResidualRelu => UnaryKind.Relu,
            Epi.BiasSigmoid => UnaryKind.Sigmoid,
            Epi.Relu6 => UnaryKind.Relu6,
            _ => UnaryOp.None,
        };
        var biasV = hasBias ? Values(seed + 2, o, dtype) : null;
        var resV = hasRes ? Values(seed + 3, yShape.Numel, dtype) : null;

        float[] expected;
        {
            using var xc = Cpu(xv, xShape);
            using var wc = Cpu(wv, wShape);
            using var bc = biasV is null ? null : Cpu(biasV, new Shape(o));
            using var rc = resV is null ? null : Cpu(resV, yShape);
            using var yc = Op.Conv2d(xc, wc, p, new Epilogue(bc, rc, act));
            expected = yc.ToArray<float>();
        }
        using var xg = OnGpu(xv, xShape, dtype, format);
        using var wg = OnGpu(wv, wShape, dtype, format);
        using var bg = biasV is null ? null : OnGpu(biasV, new Shape(o), dtype);
        using var rg = resV is null ? null : OnGpu(resV, yShape, dtype, format);
        Poison(yShape.Numel, dtype);
        using var y = Op.Conv2d(xg, wg, p, new Epilogue(bg, rg, act));
        Assert.Equal(yShape, y.Shape);
        Assert.True(y.IsContiguous(format), $"output is not dense in {format}");
        int terms = c / p.Groups * kh * kw;
        // fp32: cuDNN may pick Winograd or FFT algorithms, whose rounding differs more than a direct sum's
        var (atol, rtol) = Tolerance(dtype, terms);
        if (dtype == DType.Float32) { atol *= 10; rtol *= 5; }
        var got = Download(y);
        var exp = (float[])expected.Clone();
        for (int i = 0; i < exp.Length; i++) exp[i] = Round(exp[i], dtype);
        Osprey.Tests.Support.Close.Assert(exp, got, atol, rtol,
            $"conv2d {dtype.Name()} {(nhwc ? "NHWC" : "NCHW")} x{xShape} w{wShape} {p} {epi}");
    }
}
