using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Tests.Support;

namespace Osprey.Tests.Cuda;

/// <summary>
/// Helpers for the cuBLASLt/cuDNN tests: seeded inputs rounded to the tested dtype (so the CPU reference
/// in fp32 sees exactly the values the GPU sees), uploads in either memory format, NaN poisoning of the
/// allocator's cached blocks, and per-dtype tolerances.
/// </summary>
internal static class MatMulConvSupport
{
    /// <summary>Seeded uniform values rounded through <paramref name="dtype"/> and back to float.</summary>
    public static float[] Values(int seed, long count, DType dtype, float lo = -1f, float hi = 1f)
    {
        var v = Rand.Floats(seed, count, lo, hi);
        for (long i = 0; i < v.LongLength; i++) v[i] = Round(v[i], dtype);
        return v;
    }

    public static float Round(float v, DType dtype) => dtype switch
    {
        DType.Float16 => (float)(Half)v,
        DType.BFloat16 => BFloat16.FromFloat(v).ToFloat(),
        _ => v,
    };

    /// <summary>A CPU fp32 tensor (row-major) holding the values.</summary>
    public static Tensor Cpu(float[] values, Shape shape) => Tensor.FromSpan<float>(values, shape);

    /// <summary>
    /// The same values (logical row-major order) on the GPU in the given dtype and memory format. A
    /// channels_last tensor is uploaded in NHWC order and permuted (a view), so no GPU kernel is involved.
    /// </summary>
    public static Tensor OnGpu(float[] values, Shape shape, DType dtype, MemoryFormat format = MemoryFormat.Contiguous)
    {
        if (format == MemoryFormat.Contiguous) return Upload(values, shape, dtype);
        int n = shape[0], c = shape[1], h = shape[2], w = shape[3];
        using var nhwc = Upload(ToNhwc(values, n, c, h, w), new Shape(n, h, w, c), dtype);
        return nhwc.Permute(0, 3, 1, 2);
    }

    private static Tensor Upload(float[] values, Shape shape, DType dtype) => dtype switch
    {
        DType.Float16 => Tensor.FromSpan<Half>(Array.ConvertAll(values, v => (Half)v), shape, Gpu.Device),
        DType.BFloat16 => Tensor.FromSpan<BFloat16>(Array.ConvertAll(values, BFloat16.FromFloat), shape, Gpu.Device),
        _ => Tensor.FromSpan<float>(values, shape, Gpu.Device),
    };

    private static float[] ToNhwc(float[] nchw, int n, int c, int h, int w)
    {
        var r = new float[nchw.Length];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < c; j++)
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++)
                        r[((i * h + y) * w + x) * c + j] = nchw[((i * c + j) * h + y) * w + x];
        return r;
    }

    /// <summary>Downloads a float tensor dense in NCHW or NHWC to fp32 values in logical row-major (NCHW) order, without GPU kernels.</summary>
    public static float[] Download(Tensor t)
    {
        if (t.IsContiguous()) return Raw(t);
        Assert.True(t.Rank == 4 && t.IsContiguous(MemoryFormat.ChannelsLast), $"tensor {t.Shape} is neither NCHW- nor NHWC-dense");
        int n = t.Shape[0], c = t.Shape[1], h = t.Shape[2], w = t.Shape[3];
        using var nhwc = t.Permute(0, 2, 3, 1);
        var v = Raw(nhwc);
        var r = new float[v.Length];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < c; j++)
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++)
                        r[((i * c + j) * h + y) * w + x] = v[((i * h + y) * w + x) * c + j];
        return r;
    }

    private static float[] Raw(Tensor t) => t.DType switch
    {
        DType.Float16 => Array.ConvertAll(t.ToArray<Half>(), h => (float)h),
        DType.BFloat16 => Array.ConvertAll(t.ToArray<BFloat16>(), b => b.ToFloat()),
        _ => t.ToArray<float>(),
    };

    /// <summary>
    /// Uploads NaN into a block of the caching allocator and frees it, so that an output of the same size
    /// allocated next most likely reuses poisoned memory: an element the library forgets to write stays NaN.
    /// </summary>
    public static void Poison(long elements, DType dtype)
    {
        if (elements == 0) return;
        var nan = new float[elements];
        Array.Fill(nan, float.NaN);
        using var t = Upload(nan, new Shape(checked((int)elements)), dtype);
        t.Backend.Synchronize();
    }

    /// <summary>(atol, rtol) per dtype for a product summing <paramref name="terms"/> values of magnitude about 1.</summary>
    public static (double Atol, double Rtol) Tolerance(DType dtype, int terms)
    {
        double scale = Math.Sqrt(Math.Max(terms, 1));
        return dtype switch
        {
            DType.Float16 => (1e-3 * scale, 2e-3),     // fp32 accumulation, one fp16 rounding of the output
            DType.BFloat16 => (8e-3 * scale, 1e-2),
            _ => (2e-5 * scale, 1e-4),                  // exact fp32, summation order differs
        };
    }

    public static void AssertClose(float[] expected, Tensor actual, DType dtype, int terms, string what)
    {
        var (atol, rtol) = Tolerance(dtype, terms);
        var got = Download(actual);
        // the reference is fp32; round it like the output so that only the product's error remains
        var exp = (float[])expected.Clone();
        for (int i = 0; i < exp.Length; i++) exp[i] = Round(exp[i], dtype);
        Close.Assert(exp, got, atol, rtol, what);
    }
}
