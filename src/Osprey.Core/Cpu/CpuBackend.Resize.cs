using System.Buffers;
using Osprey.Core.Backends;
using Osprey.Core.Tensors;

namespace Osprey.Core.Cpu;

public sealed partial class CpuBackend
{
    public void Resize(ResizeMode mode, Tensor x, Tensor y)
    {
        switch (x.DType)
        {
            case DType.Float32: ResizeAs<float>(mode, x, y); break;
            case DType.Float16: ResizeAs<Half>(mode, x, y); break;
            case DType.BFloat16: ResizeAs<BFloat16>(mode, x, y); break;
            default: throw new OpArgumentException($"interpolate: needs a floating tensor, got {x.DType.Name()} {x.Shape}");
        }
    }

    /// <summary>
    /// Source taps along one axis, as torch.nn.functional.interpolate(size=...) computes them in float32:
    /// scale = in / out; nearest takes min(floor(dst * scale), in - 1); bilinear (align_corners=False)
    /// takes src = max(scale * (dst + 0.5) - 0.5, 0), i0 = floor(src), i1 = i0 + 1 clipped, weight src - i0.
    /// </summary>
    private static void ResizeTaps(ResizeMode mode, int inSize, int outSize, Span<int> i0, Span<int> i1, Span<float> w1)
    {
        float scale = (float)inSize / outSize;
        for (int d = 0; d < outSize; d++)
        {
            if (mode == ResizeMode.Nearest)
            {
                i0[d] = i1[d] = Math.Min((int)MathF.Floor(d * scale), inSize - 1);
                w1[d] = 0;
                continue;
            }
            float src = MathF.Max(scale * (d + 0.5f) - 0.5f, 0f);
            int a = (int)src;
            i0[d] = a;
            i1[d] = a + (a < inSize - 1 ? 1 : 0);
            w1[d] = src - a;
        }
    }

    private static void ResizeAs<T>(ResizeMode mode, Tensor x, Tensor y) where T : unmanaged
    {
        int c = x.Shape[1], h = x.Shape[2], w = x.Shape[3], oh = y.Shape[2], ow = y.Shape[3];
        var taps = new int[2 * (oh + ow)];
        var weights = new float[oh + ow];
        ResizeTaps(mode, h, oh, taps.AsSpan(0, oh), taps.AsSpan(oh, oh), weights.AsSpan(0, oh));
        ResizeTaps(mode, w, ow, taps.AsSpan(2 * oh, ow), taps.AsSpan(2 * oh + ow, ow), weights.AsSpan(oh, ow));
        if (x.IsContiguous()) ResizeNchw<T>(mode, x, y, taps, weights);
        else ResizeNhwc<T>(mode, x, y, taps, weights);
    }

    /// <summary>
    /// NCHW, one output row per step. Bilinear is separable: the two source rows are interpolated
    /// horizontally into float32 rows (reused while consecutive output rows share them), then blended
    /// vertically with the SIMD drivers: y = b0 * (a0 x00 + a1 x01) + b1 * (a0 x10 + a1 x11), torch's order.
    /// </summary>
    private static void ResizeNchw<T>(ResizeMode mode, Tensor x, Tensor y, int[] taps, float[] weights) where T : unmanaged
    {
        int c = x.Shape[1], h = x.Shape[2], w = x.Shape[3], oh = y.Shape[2], ow = y.Shape[3];
        Parallel2.For((long)x.Shape[0] * c * oh, ow * 4L, (lo, hi) =>
        {
            var xs = Data<T>(x);
            var ys = Data<T>(y);
            ReadOnlySpan<int> h0 = taps.AsSpan(0, oh), h1 = taps.AsSpan(oh, oh), w0 = taps.AsSpan(2 * oh, ow), w1 = taps.AsSpan(2 * oh + ow, ow);
            ReadOnlySpan<float> lh = weights.AsSpan(0, oh), lw = weights.AsSpan(oh, ow);
            float[] rented = ArrayPool<float>.Shared.Rent(3 * ow);
            try
            {
                var top = rented.AsSpan(0, ow);
                var bottom = rented.AsSpan(ow, ow);
                var row = rented.AsSpan(2 * ow, ow);
                long cachedPlane = -1;
                int cachedTop = -1, cachedBottom = -1;
                for (long r = lo; r < hi; r++)
                {
                    long plane = r / oh;
                    int i = (int)(r % oh);
                    var src0 = xs.Slice((int)((plane * h + h0[i]) * w), w);
                    var dst = ys.Slice((int)((plane * oh + i) * ow), ow);
                    if (mode == ResizeMode.Nearest)
                    {
                        for (int j = 0; j < ow; j++) dst[j] = src0[w0[j]];
                        continue;
                    }
                    if (plane != cachedPlane || h0[i] != cachedTop)
                    {
                        if (plane == cachedPlane && h0[i] == cachedBottom) bottom.CopyTo(top);
                        else HorizontalTaps(src0, w0, w1, lw, top);
                        cachedTop = h0[i];
                        cachedBottom = -1;
                    }
                    if (plane != cachedPlane || h1[i] != cachedBottom)
                    {
                        HorizontalTaps(xs.Slice((int)((plane * h + h1[i]) * w), w), w0, w1, lw, bottom);
                        cachedBottom = h1[i];
                    }
                    cachedPlane = plane;
                    float b1 = lh[i];
                    Blend(top, bottom, 1 - b1, b1, row);
                    Elem.Store<T>(row, dst, 0, 1);
                }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(rented);
            }
        });
    }

    private static void HorizontalTaps<T>(ReadOnlySpan<T> src, ReadOnlySpan<int> w0, ReadOnlySpan<int> w1, ReadOnlySpan<float> lw, Span<float> dst) where T : unmanaged
    {
        for (int j = 0; j < dst.Length; j++)
        {
            float a1 = lw[j];
            dst[j] = (1 - a1) * Elem.ToF(src[w0[j]]) + a1 * Elem.ToF(src[w1[j]]);
        }
    }

    /// <summary>y = wa * a + wb * b (y may alias a but not b).</summary>
    private static void Blend(ReadOnlySpan<float> a, ReadOnlySpan<float> b, float wa, float wb, Span<float> y)
    {
        SimdDrivers.BinaryScalar<float, MulOp<float>>(a, wa, false, y);
        SimdDrivers.Axpy(b, wb, y);
    }

    /// <summary>NHWC, one output pixel's channel vector per step, blended with the SIMD drivers.</summary>
    private static void ResizeNhwc<T>(ResizeMode mode, Tensor x, Tensor y, int[] taps, float[] weights) where T : unmanaged
    {
        int c = x.Shape[1], h = x.Shape[2], w = x.Shape[3], oh = y.Shape[2], ow = y.Shape[3];
        Parallel2.For((long)x.Shape[0] * oh, (long)ow * c * 4, (lo, hi) =>
        {
            var xs = Data<T>(x);
            var ys = Data<T>(y);
            ReadOnlySpan<int> h0 = taps.AsSpan(0, oh), h1 = taps.AsSpan(oh, oh), w0 = taps.AsSpan(2 * oh, ow), w1 = taps.AsSpan(2 * oh + ow, ow);
            ReadOnlySpan<float> lh = weights.AsSpan(0, oh), lw = weights.AsSpan(oh, ow);
            float[] rented = ArrayPool<float>.Shared.Rent(6 * c);
            try
            {
                var buf = rented.AsSpan(0, 6 * c);
                var top = buf[..c];
                var bottom = buf.Slice(c, c);
                var p = buf.Slice(2 * c, 4 * c);
                for (long r = lo; r < hi; r++)
                {
                    long n = r / oh;
                    int i = (int)(r % oh);
                    float b1 = lh[i];
                    long rowTop = (n * h + h0[i]) * w, rowBottom = (n * h + h1[i]) * w;
                    for (int j = 0; j < ow; j++)
                    {
                        long at = ((n * oh + i) * ow + j) * c;
                        if (mode == ResizeMode.Nearest)
                        {
                            xs.Slice((int)((rowTop + w0[j]) * c), c).CopyTo(ys.Slice((int)at, c));
                            continue;
                        }
                        float a1 = lw[j];
                        var x00 = Pixel(xs, (rowTop + w0[j]) * c, p[..c]);
                        var x01 = Pixel(xs, (rowTop + w1[j]) * c, p.Slice(c, c));
                        var x10 = Pixel(xs, (rowBottom + w0[j]) * c, p.Slice(2 * c, c));
                        var x11 = Pixel(xs, (rowBottom + w1[j]) * c, p.Slice(3 * c, c));
                        Blend(x00, x01, 1 - a1, a1, top);
                        Blend(x10, x11, 1 - a1, a1, bottom);
                        Blend(top, bottom, 1 - b1, b1, top);
                        Elem.Store<T>(top, ys, at, 1);
                    }
                }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(rented);
            }
        });
    }

    /// <summary>A pixel's channels as float32: the tensor's own memory for float32, else converted into scratch.</summary>
    private static ReadOnlySpan<float> Pixel<T>(Span<T> xs, long at, Span<float> scratch) where T : unmanaged
    {
        if (typeof(T) == typeof(float)) return System.Runtime.InteropServices.MemoryMarshal.Cast<T, float>(xs.Slice((int)at, scratch.Length));
        Elem.Load<T>(xs, at, 1, scratch);
        return scratch;
    }
}
