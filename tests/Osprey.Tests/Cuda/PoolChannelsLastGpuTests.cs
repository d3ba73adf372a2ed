using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Cuda;
using Osprey.Tests.Support;

namespace Osprey.Tests.Cuda;

/// <summary>
/// Pooling on dense channels-last tensors: the 16-byte kernel (C a multiple of 8 for 16-bit floats, of 4 for float32)
/// and the strided fallback (other C, misaligned or non-dense views), both against the CPU backend on the same values.
/// Max is exact; average within one rounding of the dtype (same summation order, float32 accumulation).
/// </summary>
[Collection(GpuCollection.Name)]
public class PoolChannelsLastGpuTests
{
    public static IEnumerable<object[]> Cases()
    {
        string[] types = ["float16", "float32", "bfloat16"];
        foreach (var t in types)
        {
            // kind, n, c, h, w, k, s, pad, ceil, countPad
            yield return [t, PoolKind.Max, 2, 16, 13, 11, 2, 2, 0, true, true];    // SSD's 2x2 s2 ceil on odd sizes
            yield return [t, PoolKind.Max, 2, 24, 9, 7, 3, 1, 1, false, true];     // SSD's pool5 3x3 s1 p1
            yield return [t, PoolKind.Max, 1, 64, 15, 17, 3, 2, 1, false, true];   // RetinaNet's stem 3x3 s2 p1
            yield return [t, PoolKind.Max, 2, 13, 9, 11, 3, 2, 1, true, true];     // C not a multiple of 8 or 4: fallback
            yield return [t, PoolKind.Max, 1, 12, 7, 9, 2, 2, 0, true, true];      // C = 12: vector for float32 only
            yield return [t, PoolKind.Avg, 2, 16, 13, 11, 3, 2, 1, true, true];
            yield return [t, PoolKind.Avg, 2, 16, 13, 11, 3, 2, 1, true, false];   // count_include_pad=False with ceil windows
            yield return [t, PoolKind.Avg, 1, 8, 6, 6, 6, 6, 0, false, true];      // global
            yield return [t, PoolKind.Avg, 2, 10, 5, 8, 2, 1, 1, false, false];    // fallback
        }
    }

    [GpuTheory]
    [MemberData(nameof(Cases))]
    public void Pool2d_channels_last_matches_the_cpu(string type, PoolKind kind, int n, int c, int h, int w, int k, int s, int pad, bool ceil, bool countPad)
    {
        var dtype = Enum.Parse<DType>(type, ignoreCase: true);
        var p = new Pool2dParams(k, k, s, s, pad, pad, ceil, countPad);
        var shape = new Shape(n, c, h, w);
        using var host32 = Rand.Tensor(c * 31 + h * 7 + w, shape, -4f, 4f);
        using var host = Op.Cast(host32, dtype);
        using var hostNhwc = Op.Contiguous(host, MemoryFormat.ChannelsLast);
        using var onGpu = Op.To(host, Gpu.Device);
        using var x = Op.Contiguous(onGpu, MemoryFormat.ChannelsLast);
        using var y = Op.Pool2d(kind, x, p);
        Assert.True(y.IsContiguous(MemoryFormat.ChannelsLast));
        Assert.Equal(c % (16 / dtype.SizeOf()) == 0, CudaBackend.PoolVectorised(x, y, 16 / dtype.SizeOf()));
        using var expected = Op.Pool2d(kind, hostNhwc, p);
        AssertClose(expected, y, kind, dtype);
    }

    [GpuFact]
    public void Nan_propagates_through_max_in_every_lane_and_views_take_the_fallback()
    {
        var shape = new Shape(2, 16, 7, 7);
        var v = new float[shape.Numel];
        var rng = new Random(5);
        for (int i = 0; i < v.Length; i++) v[i] = (float)(rng.NextDouble() * 2 - 1);
        // NaN at channel 3 and 12 of pixel (n 1, y 2, x 3) in NCHW order
        v[((1 * 16 + 3) * 7 + 2) * 7 + 3] = float.NaN;
        v[((1 * 16 + 12) * 7 + 2) * 7 + 3] = float.NaN;
        using var h32 = Tensor.FromSpan<float>(v, shape);
        using var h16 = Op.Cast(h32, DType.Float16);
        using var g = Op.To(h16, Gpu.Device);
        using var x = Op.Contiguous(g, MemoryFormat.ChannelsLast);
        var p = new Pool2dParams(2, 2, 2, 2, CeilMode: true);
        using var y = Op.Pool2d(PoolKind.Max, x, p);
        using var hx = Op.Contiguous(h16, MemoryFormat.ChannelsLast);
        using var expected = Op.Pool2d(PoolKind.Max, hx, p);
        AssertClose(expected, y, PoolKind.Max, DType.Float16);
        var got = Values(y);
        Assert.True(float.IsNaN(got[((1 * 16 + 3) * 4 + 1) * 4 + 1]));
        Assert.True(float.IsNaN(got[((1 * 16 + 12) * 4 + 1) * 4 + 1]));
        Assert.False(float.IsNaN(got[((1 * 16 + 4) * 4 + 1) * 4 + 1]));

        // a channel slice of an NHWC tensor is not dense: the strided kernel runs, same values as the CPU
        using var sliced = x.Slice(1, 0, 8);
        using var ys = Op.Pool2d(PoolKind.Max, sliced, p);
        Assert.False(CudaBackend.PoolVectorised(sliced, ys, 8));
        using var hs = hx.Slice(1, 0, 8);
        using var es = Op.Pool2d(PoolKind.Max, hs, p);
        AssertClose(es, ys, PoolKind.Max, DType.Float16);
    }

    [GpuFact]
    public void Repeated_pooling_leaves_the_allocator_as_it_was()
    {
        var backend = Gpu.Backend;
        using var h = Rand.Tensor(9, new Shape(4, 64, 33, 31), -1f, 1f);
        using var h16 = Op.Cast(h, DType.Float16);
        using var g = Op.To(h16, Gpu.Device);
        using var x = Op.Contiguous(g, MemoryFormat.ChannelsLast);
        var p = Pool2dParams.Square(2, 2, ceilMode: true);
        using (Op.Pool2d(PoolKind.Max, x, p)) { }
        backend.Synchronize();
        long live = backend.Memory.LiveBytes, allocations = backend.Memory.LiveAllocations;
        for (int i = 0; i < 200; i++)
            using (Op.Pool2d(PoolKind.Max, x, p)) { }
        backend.Synchronize();
        Assert.Equal(live, backend.Memory.LiveBytes);
        Assert.Equal(allocations, backend.Memory.LiveAllocations);
    }

    private static float[] Values(Tensor t)
    {
        using var c = Op.Cast(t, DType.Float32);
        using var h = Op.To(c, Device.Cpu);
        using var dense = Op.Contiguous(h);
        return dense.ToArray<float>();
    }

    private static void AssertClose(Tensor expected, Tensor actual, PoolKind kind, DType dtype)
    {
        Assert.Equal(expected.Shape, actual.Shape);
        var e = Values(expected);
        var a = Values(actual);
        // max: the same element is chosen, exactly; average: float32 sums in the same order, one rounding to the dtype
        double tol = kind == PoolKind.Max ? 0 : dtype switch { DType.Float16 => 2e-3, DType.BFloat16 => 1.6e-2, _ => 1e-6 };
        for (int i = 0; i < e.Length; i++)
        {
            if (float.IsNaN(e[i])) { Assert.True(float.IsNaN(a[i]), $"element {i}: expected NaN, got {a[i]}"); continue; }
            double d = Math.Abs(e[i] - a[i]);
            Assert.True(d <= tol * Math.Max(1, Math.Abs(e[i])), $"element {i}: expected {e[i]}, got {a[i]} ({kind}, {dtype})");
        }
    }
}
