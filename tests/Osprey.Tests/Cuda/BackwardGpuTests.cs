using Osprey.Core.Autograd;
using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Tests.Support;
using static Osprey.Tests.Cuda.MatMulConvSupport;

namespace Osprey.Tests.Cuda;

/// <summary>
/// The CUDA backward kernels against the CPU backend's (the reference the autograd tests check against PyTorch):
/// seeded inputs with odd shapes in NCHW and NHWC, outputs allocated over NaN-poisoned memory so an unwritten
/// element fails. Tolerances: fp32 convolution 1e-4 relative (cuDNN's algorithm and summation order differ,
/// some backward-filter algorithms accumulate with atomics); fp16 as the forward tests; pooling, resize and
/// unary within float rounding (the kernels sum in the CPU's order, but the GPU may fuse multiply-adds).
/// </summary>
[Collection(GpuCollection.Name)]
public sealed class BackwardGpuTests
{
    private static IBackend CpuBackend => BackendRegistry.Get(Device.Cpu);

    // ---- unary ----

    public static IEnumerable<object[]> UnaryKinds() => Enum.GetValues<UnaryKind>().Select(k => new object[] { k });

    [GpuTheory]
    [MemberData(nameof(UnaryKinds))]
    public void Unary_backward_matches_cpu(UnaryKind kind)
    {
        var op = kind switch
        {
            UnaryKind.LeakyRelu => UnaryOp.LeakyRelu(0.2f),
            UnaryKind.Clamp => UnaryOp.Clamp(-1.5f, 2f),
            _ => new UnaryOp(kind),
        };
        bool positive = kind is UnaryKind.Sqrt or UnaryKind.Log;
        var shape = new Shape(3, 37, 11); // 1221 elements: not a multiple of any vector width
        using var x = Rand.Tensor(11, shape, positive ? 0.1f : -5f, 5f);
        using var y = Op.Unary(op, x);
        using var gy = Rand.Tensor(12, shape);
        using var expected = Tensor.Empty(shape, DType.Float32);
        CpuBackend.UnaryBackward(op, x, y, gy, expected);

        using var dx = Op.To(x, Gpu.Device);
        using var dy = Op.To(y, Gpu.Device);
        using var dgy = Op.To(gy, Gpu.Device);
        Poison(shape.Numel, DType.Float32);
        using var dgx = Tensor.Empty(shape, DType.Float32, Gpu.Device);
        Gpu.Backend.UnaryBackward(op, dx, dy, dgy, dgx);
        Close.Assert(expected.ToArray<float>(), Download(dgx), 1e-6, 1e-4, $"{kind}_backward");
    }

    [GpuFact]
    public void Unary_backward_float16_relu()
    {
        var shape = new Shape(5, 13);
        var xv = Values(21, shape.Numel, DType.Float16, -2f, 2f);
        var gv = Values(22, shape.Numel, DType.Float16);
        var expected = new float[xv.Length];
        for (int i = 0; i < xv.Length; i++) expected[i] = xv[i] > 0 ? gv[i] : 0f;
        using var x = OnGpu(xv, shape, DType.Float16);
        using var y = Op.Relu(x);
        using var gy = OnGpu(gv, shape, DType.Float16);
        using var gx = Tensor.Empty(shape, DType.Float16, Gpu.Device);
        Gpu.Backend.UnaryBackward(UnaryKind.Relu, x, y, gy, gx);
        Close.Assert(expected, Download(gx), 0, 0, "relu_backward fp16");
    }

    // ---- convolution ----

    // n, c, h, w, o, kh, kw, strideH, strideW, pad, dilation, groups
    private static readonly int[][] ConvGeometries =
    [
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1],
        [2, 3, 23, 19, 8, 7, 7, 2, 2, 3, 1, 1],      // stem-like, odd size
        [3, 16, 13, 13, 32, 1, 1, 1, 1, 0, 1, 1],    // 1x1
        [2, 13, 11, 17, 7, 3, 3, 1, 1, 1, 1, 1],     // prime channels
        [2, 32, 15, 15, 64, 3, 3, 2, 2, 1, 1, 1],    // 3x3/2
        [2, 24, 9, 10, 24, 3, 3, 1, 1, 1, 1, 24],    // depthwise
        [1, 12, 8, 9, 20, 3, 3, 1, 1, 2, 2, 4],      // grouped + dilated
        [2, 8, 10, 7, 6, 3, 1, 2, 1, 1, 1, 2],       // non-square kernel and stride
        [5, 5, 6, 6, 3, 5, 5, 1, 1, 0, 1, 1],
        [1, 7, 12, 12, 5, 3, 3, 3, 3, 0, 1, 1],      // stride 3: some input rows feed no output
    ];

    public static IEnumerable<object[]> ConvCases()
    {
        foreach (var dtype in new[] { DType.Float32, DType.Float16 })
            foreach (var nhwc in new[] { false, true })
                foreach (var g in ConvGeometries)
                    yield return [dtype, nhwc, .. g.Cast<object>()];
    }

    [GpuTheory]
    [MemberData(nameof(ConvCases))]
    public void Conv2d_backward_data_and_filter_match_cpu(DType dtype, bool nhwc, int n, int c, int h, int w, int o, int kh, int kw, int sh, int sw, int pad, int dil, int groups)
    {
        var p = new Conv2dParams(sh, sw, pad, pad, dil, dil, groups);
        var xShape = new Shape(n, c, h, w);
        var wShape = new Shape(o, c / groups, kh, kw);
        int seed = c * 31 + o + (nhwc ? 1 : 0);
        var xv = Values(seed, xShape.Numel, dtype);
        var wv = Values(seed + 1, wShape.Numel, dtype);
        using var cx = Cpu(xv, xShape);
        using var cw = Cpu(wv, wShape);
        using var cy = Op.Conv2d(cx, cw, p);
        var yShape = cy.Shape;
        var gv = Values(seed + 2, yShape.Numel, dtype);
        using var cgy = Cpu(gv, yShape);
        using var cgx = Tensor.Empty(xShape, DType.Float32);
        using var cgw = Tensor.Empty(wShape, DType.Float32);
        CpuBackend.Conv2dBackwardData(cgy, cw, p, cgx);
        CpuBackend.Conv2dBackwardFilter(cx, cgy, p, cgw);

        var format = nhwc ? MemoryFormat.ChannelsLast : MemoryFormat.Contiguous;
        using var x = OnGpu(xv, xShape, dtype, format);
        using var wt = OnGpu(wv, wShape, dtype); // contiguous weight with NHWC gradients: the backend converts it
        using var gy = OnGpu(gv, yShape, dtype, format);
        Poison(xShape.Numel, dtype);
        using var gx = Tensor.Empty(xShape, dtype, Gpu.Device, format);
        Gpu.Backend.Conv2dBackwardData(gy, wt, p, gx);
        AssertClose(cgx.ToArray<float>(), gx, dtype, o / groups * kh * kw, $"conv2d_backward_data {dtype} nhwc={nhwc} {p}");

        Poison(wShape.Numel, dtype);
        using var gw = Tensor.Empty(wShape, dtype, Gpu.Device);
        Gpu.Backend.Conv2dBackwardFilter(x, gy, p, gw);
        AssertClose(cgw.ToArray<float>(), gw, dtype, n * yShape[2] * yShape[3], $"conv2d_backward_filter {dtype} nhwc={nhwc} {p}");
        if (!nhwc) Assert.NotNull(Gpu.Backend.ConvBackwardChoiceFor(x, gw, p, filter: true)); // NHWC may have run through NCHW
    }

    [GpuFact]
    public void Conv2d_backward_with_mixed_formats_and_empty_batch()
    {
        var p = Conv2dParams.Square(1, 1);
        var xShape = new Shape(2, 6, 7, 5);
        var wShape = new Shape(4, 6, 3, 3);
        var xv = Values(70, xShape.Numel, DType.Float32);
        var gv = Values(71, 2 * 4 * 7 * 5, DType.Float32);
        var yShape = new Shape(2, 4, 7, 5);
        using var cx = Cpu(xv, xShape);
        using var cgy = Cpu(gv, yShape);
        using var cgw = Tensor.Empty(wShape, DType.Float32);
        CpuBackend.Conv2dBackwardFilter(cx, cgy, p, cgw);
        // x channels_last, gy NCHW: the backend brings gy to x's format
        using var x = OnGpu(xv, xShape, DType.Float32, MemoryFormat.ChannelsLast);
        using var gy = OnGpu(gv, yShape, DType.Float32);
        using var gw = Tensor.Empty(wShape, DType.Float32, Gpu.Device);
        Gpu.Backend.Conv2dBackwardFilter(x, gy, p, gw);
        AssertClose(cgw.ToArray<float>(), gw, DType.Float32, 2 * 7 * 5, "conv2d_backward_filter mixed formats");

        // empty batch: the weight gradient is zero
        using var ex = Tensor.Empty(new Shape(0, 6, 7, 5), DType.Float32, Gpu.Device);
        using var egy = Tensor.Empty(new Shape(0, 4, 7, 5), DType.Float32, Gpu.Device);
        Poison(wShape.Numel, DType.Float32);
        using var egw = Tensor.Empty(wShape, DType.Float32, Gpu.Device);
        Gpu.Backend.Conv2dBackwardFilter(ex, egy, p, egw);
        Assert.All(Download(egw), v => Assert.Equal(0f, v));
    }

    // ---- pooling ----

    public static IEnumerable<object[]> PoolCases()
    {
        // kind, n, c, h, w, k, s, pad, ceil, countIncludePad
        object[][] geo =
        [
            [PoolKind.Max, 2, 3, 13, 11, 3, 2, 1, false, true],
            [PoolKind.Max, 1, 5, 14, 9, 3, 2, 1, true, true],     // ceil_mode: partial last windows
            [PoolKind.Max, 2, 4, 7, 7, 2, 2, 0, true, true],
            [PoolKind.Max, 1, 2, 5, 6, 3, 1, 1, false, true],     // overlapping windows
            [PoolKind.Max, 1, 1, 1, 1, 1, 1, 0, false, true],
            [PoolKind.Avg, 2, 3, 13, 11, 3, 2, 1, false, true],
            [PoolKind.Avg, 2, 3, 13, 11, 3, 2, 1, false, false],  // count_include_pad=False
            [PoolKind.Avg, 1, 5, 14, 9, 3, 2, 1, true, true],
            [PoolKind.Avg, 1, 5, 14, 9, 3, 2, 1, true, false],
            [PoolKind.Avg, 3, 2, 8, 8, 8, 8, 0, false, true],     // global
        ];
        foreach (var nhwc in new[] { false, true })
            foreach (var g in geo)
                yield return [nhwc, .. g];
    }

    [GpuTheory]
    [MemberData(nameof(PoolCases))]
    public void Pool2d_backward_matches_cpu(bool nhwc, PoolKind kind, int n, int c, int h, int w, int k, int s, int pad, bool ceil, bool countPad)
    {
        var p = new Pool2dParams(k, k, s, s, pad, pad, ceil, countPad);
        CheckPool(kind, p, new Shape(n, c, h, w), nhwc, Values(h * 7 + w, (long)n * c * h * w, DType.Float32));
    }

    [GpuTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void Max_pool2d_backward_sends_ties_to_the_first_maximum(bool nhwc)
    {
        // values from {0, 1, 2}: most windows hold ties, which must resolve to the first maximum as on the CPU
        var shape = new Shape(2, 3, 9, 10);
        var v = Values(5, shape.Numel, DType.Float32, 0f, 3f);
        for (int i = 0; i < v.Length; i++) v[i] = MathF.Floor(v[i]);
        CheckPool(PoolKind.Max, new Pool2dParams(3, 3, 2, 2, 1, 1, CeilMode: true), shape, nhwc, v);
    }

    private static void CheckPool(PoolKind kind, Pool2dParams p, Shape xShape, bool nhwc, float[] xv)
    {
        using var cx = Cpu(xv, xShape);
        using var cy = Op.Pool2d(kind, cx, p);
        var gv = Values(xv.Length + 3, cy.Shape.Numel, DType.Float32);
        using var cgy = Cpu(gv, cy.Shape);
        using var cgx = Tensor.Empty(xShape, DType.Float32);
        CpuBackend.Pool2dBackward(kind, cx, cgy, p, cgx);

        var format = nhwc ? MemoryFormat.ChannelsLast : MemoryFormat.Contiguous;
        using var x = OnGpu(xv, xShape, DType.Float32, format);
        using var gy = OnGpu(gv, cy.Shape, DType.Float32, format);
        Poison(xShape.Numel, DType.Float32);
        using var gx = Tensor.Empty(xShape, DType.Float32, Gpu.Device, format);
        Gpu.Backend.Pool2dBackward(kind, x, gy, p, gx);
        Close.Assert(cgx.ToArray<float>(), Download(gx), 1e-6, 1e-5, $"{kind} pool2d_backward nhwc={nhwc} {p}");
    }

    // ---- resize ----

    public static IEnumerable<object[]> ResizeCases()
    {
        int[][] sizes = [[5, 7, 13, 11], [13, 11, 5, 4], [6, 6, 12, 12], [9, 8, 9, 8], [1, 1, 3, 3], [3, 3, 1, 1], [7, 5, 20, 3]];
        foreach (var mode in new[] { ResizeMode.Nearest, ResizeMode.Bilinear })
            foreach (var nhwc in new[] { false, true })
                foreach (var s in sizes)
                    yield return [mode, nhwc, s[0], s[1], s[2], s[3]];
    }

    [GpuTheory]
    [MemberData(nameof(ResizeCases))]
    public void Resize_backward_matches_cpu(ResizeMode mode, bool nhwc, int h, int w, int oh, int ow)
    {
        var xShape = new Shape(2, 3, h, w);
        var yShape = new Shape(2, 3, oh, ow);
        var gv = Values(h * 100 + oh, yShape.Numel, DType.Float32);
        using var cgy = Cpu(gv, yShape);
        using var cgx = Tensor.Empty(xShape, DType.Float32);
        CpuBackend.ResizeBackward(mode, cgy, cgx);

        var format = nhwc ? MemoryFormat.ChannelsLast : MemoryFormat.Contiguous;
        using var gy = OnGpu(gv, yShape, DType.Float32, format);
        Poison(xShape.Numel, DType.Float32);
        using var gx = Tensor.Empty(xShape, DType.Float32, Gpu.Device, format);
        Gpu.Backend.ResizeBackward(mode, gy, gx);
        Close.Assert(cgx.ToArray<float>(), Download(gx), 1e-6, 1e-5, $"{mode} resize_backward {h}x{w} -> {oh}x{ow} nhwc={nhwc}");
    }

    // ---- scatter-add ----

    [GpuTheory]
    [InlineData(0, false)]
    [InlineData(1, true)]
    [InlineData(1, false)]
    [InlineData(2, true)]
    public void Scatter_add_matches_cpu(int axis, bool wide)
    {
        int[] xDims = [5, 7, 3];
        int[] iDims = [5, 7, 3];
        iDims[axis] = 11; // more positions than the axis holds: repeated indices accumulate
        var xShape = new Shape(xDims);
        var iShape = new Shape(iDims);
        var rng = new Random(axis * 10 + (wide ? 1 : 0));
        var idx = new long[iShape.Numel];
        for (int i = 0; i < idx.Length; i++) idx[i] = rng.Next(xDims[axis]);
        var gv = Rand.Floats(40 + axis, iShape.Numel);
        using var cIndex = wide ? Tensor.FromSpan<long>(idx, iShape) : Tensor.FromSpan<int>(Array.ConvertAll(idx, v => (int)v), iShape);
        using var cgy = Tensor.FromSpan<float>(gv, iShape);
        using var cgx = Tensor.Zeros(xShape, DType.Float32);
        CpuBackend.ScatterAdd(cgy, axis, cIndex, cgx);

        using var index = Op.To(cIndex, Gpu.Device);
        using var gy = Op.To(cgy, Gpu.Device);
        using var gx = Tensor.Zeros(xShape, DType.Float32, Gpu.Device);
        Gpu.Backend.ScatterAdd(gy, axis, index, gx);
        Close.Assert(cgx.ToArray<float>(), Download(gx), 1e-6, 1e-5, $"scatter_add axis {axis} {(wide ? "int64" : "int32")}");
    }

    [GpuFact]
    public void Scatter_add_refuses_float16_naming_the_op()
    {
        using var gy = Tensor.Empty(new Shape(4), DType.Float16, Gpu.Device);
        using var gx = Tensor.Empty(new Shape(4), DType.Float16, Gpu.Device);
        using var cIndex = Tensor.FromSpan<long>(new long[] { 0, 1, 2, 3 }, new Shape(4));
        using var index = Op.To(cIndex, Gpu.Device);
        var e = Assert.Throws<NotSupportedException>(() => Gpu.Backend.ScatterAdd(gy, 0, index, gx));
        Assert.Contains("scatter_add", e.Message, StringComparison.Ordinal);
    }

    // ---- whole tape ----

    /// <summary>
    /// A small conv net (conv+bias+relu, max pool with ceil_mode, bilinear resize, grouped dilated conv with
    /// sigmoid, average pool, gather, squared sum) differentiated on both devices: every parameter gradient and
    /// the input gradient agree.
    /// </summary>
    [GpuTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void Conv_net_backward_on_cuda_matches_cpu(bool nhwc)
    {
        var cpu = RunNet(Device.Cpu, nhwc: false);
        var gpu = RunNet(Gpu.Device, nhwc);
        Assert.Equal(cpu.Length, gpu.Length);
        string[] names = ["x", "w1", "b1", "w2", "b2"];
        for (int i = 0; i < cpu.Length; i++) Close.Assert(cpu[i], gpu[i], 1e-5, 1e-3, $"grad {names[i]} nhwc={nhwc}");
    }

    internal static float[][] RunNet(Device device, bool nhwc)
    {
        using var hx = Rand.Tensor(1, new Shape(2, 3, 17, 15));
        using var dx = Op.To(hx, device);
        using var x0 = new Parameter(nhwc ? Op.Contiguous(dx, MemoryFormat.ChannelsLast) : Op.Contiguous(dx), "x");
        using var w1 = new Parameter(On(Rand.Tensor(2, new Shape(8, 3, 3, 3), -0.5f, 0.5f), device), "w1");
        using var b1 = new Parameter(On(Rand.Tensor(3, new Shape(8)), device), "b1");
        using var w2 = new Parameter(On(Rand.Tensor(4, new Shape(6, 4, 3, 3), -0.5f, 0.5f), device), "w2");
        using var b2 = new Parameter(On(Rand.Tensor(5, new Shape(6)), device), "b2");
        Parameter[] ps = [x0, w1, b1, w2, b2];
        using (var tape = new GradTape(ps))
        {
            using var y1 = Op.Conv2d(x0.Value, w1.Value, Conv2dParams.Square(2, 1), new Epilogue(b1.Value, null, UnaryKind.Relu));
            using var y2 = Op.MaxPool2d(y1, new Pool2dParams(3, 3, 2, 2, 1, 1, CeilMode: true));
            using var y3 = Op.Resize(y2, 9, 7, ResizeMode.Bilinear);
            using var y4 = Op.Conv2d(y3, w2.Value, new Conv2dParams(1, 1, 2, 2, 2, 2, 2), new Epilogue(b2.Value, null, UnaryKind.Sigmoid));
            using var y5 = Op.AvgPool2d(y4, new Pool2dParams(2, 2, 2, 2, 1, 1, CountIncludePad: false));
            using var flat = Op.Contiguous(y5);
            using var r = flat.Reshape(2, -1);
            using var cIdx = Tensor.FromSpan<long>(new long[] { 0, 3, 3, 1, 7, 2, 5, 0 }, new Shape(2, 4));
            using var idx = Op.To(cIdx, device);
            using var gathered = Op.Gather(r, 1, idx);
            using var sq = Op.Mul(gathered, gathered);
            using var s1 = Op.Sum(sq);
            using var s2 = Op.Sum(y4);
            using var loss = Op.Add(s1, s2);
            tape.Backward(loss);
        }
        var grads = new float[ps.Length][];
        for (int i = 0; i < ps.Length; i++)
        {
            Assert.NotNull(ps[i].Grad);
            grads[i] = Download(ps[i].Grad!);
        }
        return grads;
    }

    private static Tensor On(Tensor host, Device device)
    {
        using (host) return Op.To(host, device);
    }

    [GpuFact]
    public void Composed_backward_runs_on_cuda()
    {
        using var ha = Tensor.FromArray(new[] { 1f, 2f, 3f }, 3);
        using var w = new Parameter(Op.To(ha, Gpu.Device), "w");
        using (var tape = new GradTape([w]))
        {
            using var y = Op.Mul(w.Value, w.Value);
            using var s = Op.Sum(y);
            tape.Backward(s);
        }
        using var g = Op.To(w.Grad!, Device.Cpu);
        Assert.Equal(new[] { 2f, 4f, 6f }, g.ToArray<float>());
    }
}
