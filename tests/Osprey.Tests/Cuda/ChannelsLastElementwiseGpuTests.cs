using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Cuda.Runtime;
using Osprey.Tests.Support;

namespace Osprey.Tests.Cuda;

/// <summary>
/// Element-wise kernels on dense channels-last operands (the engine's layout): the kernel layout walks dimensions in the
/// output's stride order, so NHWC tensors take the dense vectorised and periodic-broadcast paths. Results vs the CPU
/// backend on the same values, exact for fp32 (same arithmetic) and within one fp16 rounding.
/// </summary>
[Collection(GpuCollection.Name)]
public class ChannelsLastElementwiseGpuTests
{
    private static Tensor Nhwc(int seed, Shape shape, DType dtype, Device device)
    {
        using var t = Rand.Tensor(seed, shape, -3f, 3f);
        using var c = Op.Cast(t, dtype);
        using var d = Op.To(c, device);
        return Op.Contiguous(d, MemoryFormat.ChannelsLast);
    }

    private static float[] Host(Tensor t)
    {
        using var c = Op.Cast(t, DType.Float32);
        using var h = Op.To(c, Device.Cpu);
        using var dense = Op.Contiguous(h);
        return dense.ToArray<float>();
    }

    [Fact]
    public unsafe void Channels_last_layouts_merge_like_contiguous_ones()
    {
        // [N, C, H, W] = [2, 5, 7, 9] dense NHWC: strides (HWC, 1, WC, C)
        long[] nhwc = [7 * 9 * 5, 1, 9 * 5, 5];
        var l = KernelLayout.Build("t", [2, 5, 7, 9], [nhwc, nhwc], anyOrder: true);
        Assert.True(l.IsContiguous(2));
        Assert.Equal(2L * 5 * 7 * 9, l.Shape[0]);
        // a per-channel vector [1, C, 1, 1] expanded: (0, 1, 0, 0) -> walk [N*H*W, C], the vector periodic along C
        var b = KernelLayout.Build("t", [2, 5, 7, 9], [nhwc, nhwc, [0, 1, 0, 0]], anyOrder: true);
        Assert.Equal(2, b.Rank);
        Assert.Equal(2L * 7 * 9, b.Shape[0]);
        Assert.Equal(5L, b.Shape[1]);
        Assert.Equal(0L, b.Stride(2, 0));
        Assert.Equal(1L, b.Stride(2, 1));
        // contiguous output, transposed input: the output's order is kept (writes stay dense)
        var t = KernelLayout.Build("t", [3, 4], [[4, 1], [1, 3]], anyOrder: true);
        Assert.Equal(2, t.Rank);
        Assert.Equal(3L, t.Shape[0]);
        Assert.Equal(1L, t.Stride(0, 1));
        // without anyOrder the walk stays logical (scatter_add and reductions index by the linear position): the NHWC
        // operand does not merge, and a zeroed axis-0 stride (scatter_add's gx) keeps axis 0 first
        var logical = KernelLayout.Build("t", [2, 5, 7, 9], [nhwc]);
        Assert.False(logical.IsContiguous(1));
        Assert.Equal(2L, logical.Shape[0]);
        var scatter = KernelLayout.Build("t", [3, 5], [[0, 1]]);
        Assert.Equal(3L, scatter.Shape[0]);
        Assert.Equal(0L, scatter.Stride(0, 0));
    }

    [GpuTheory]
    [InlineData(2, 5, 7, 9, "float32")]
    [InlineData(3, 64, 38, 38, "float16")]
    [InlineData(2, 24, 5, 3, "float16")]
    public void Binary_unary_cast_on_channels_last_match_the_cpu(int n, int c, int h, int w, string type)
    {
        var dtype = type == "float16" ? DType.Float16 : DType.Float32;
        var backend = BackendRegistry.Get(Gpu.Device);
        var shape = new Shape(n, c, h, w);
        using var a = Nhwc(1, shape, dtype, Gpu.Device);
        using var b = Nhwc(2, shape, dtype, Gpu.Device);
        using var ch = Nhwc(3, new Shape(1, c, 1, 1), dtype, Gpu.Device);
        using var chx = ch.Expand(shape);
        using var y = Tensor.Empty(shape, dtype, Gpu.Device, MemoryFormat.ChannelsLast);
        using var y32 = Tensor.Empty(shape, DType.Float32, Gpu.Device, MemoryFormat.ChannelsLast);
        using var ha = Op.To(a, Device.Cpu);
        using var hb = Op.To(b, Device.Cpu);
        using var hch = Op.To(ch, Device.Cpu);
        double tol = dtype == DType.Float16 ? 1e-2 : 0;

        backend.Binary(BinaryOp.Mul, a, b, y);
        using (var r = Op.Binary(BinaryOp.Mul, ha, hb)) Close.Assert(Host(r), Host(y), tol, tol, "a*b nhwc");
        backend.Binary(BinaryOp.Div, a, chx, y);
        using (var r = Op.Binary(BinaryOp.Div, ha, hch)) Close.Assert(Host(r), Host(y), tol, tol, "a/channel nhwc");
        backend.Binary(BinaryOp.Sub, chx, a, y);
        using (var r = Op.Binary(BinaryOp.Sub, hch, ha)) Close.Assert(Host(r), Host(y), tol, tol, "channel-a nhwc");
        backend.Unary(UnaryKind.Relu, a, y);
        using (var r = Op.Unary(UnaryKind.Relu, ha)) Close.Assert(Host(r), Host(y), 0, 0, "relu nhwc");
        backend.Cast(a, y32);
        Close.Assert(Host(a), Host(y32), 0, 0, "cast nhwc");
    }
}
