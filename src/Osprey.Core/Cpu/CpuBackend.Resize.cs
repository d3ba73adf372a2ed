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
        bool nhwc = !x.IsContiguous();
        Parallel2.For((long)x.Shape[0] * (nhwc ? 1 : c) * oh, (long)ow * (nhwc ? c : 1) * 4, (lo, hi) =>
        {
            var xs = Data<T>(x);
            var ys = Data<T>(y);
            ReadOnlySpan<int> h0 = taps.AsSpan(0, oh), h1 = taps.AsSpan(oh, oh), w0 = taps.AsSpan(2 * oh, ow), w1 = taps.AsSpan(2 * oh + ow, ow);
            ReadOnlySpan<float> lh = weights.AsSpan(0, oh), lw = weights.AsSpan(oh, ow);
            float[]? rented = nhwc ? ArrayPool<float>.Shared.Rent(5 * c) : null;
            try
            {
                for (long r = lo; r < hi; r++)
                {
                    long plane = r / oh;
                    int i = (int)(r % oh);
                    float b1 = lh[i], b0 = 1 - b1;
                    if (!nhwc)
                    {
                        var top = xs.Slice((int)((plane * h + h0[i]) * w), w);
                        var bottom = xs.Slice((int)((plane * h + h1[i]) * w), w);
                        var dst = ys.Slice((int)((plane * oh + i) * ow), ow);
                        if (mode == ResizeMode.Nearest)
                        {
                            for (int j = 0; j < ow; j++) dst[j] = top[w0[j]];
                            continue;
                        }
                        for (int j = 0; j < ow; j++)
                        {
                            float a1 = lw[j], a0 = 1 - a1;
                            float v = b0 * (a0 * Elem.ToF(top[w0[j]]) + a1 * Elem.ToF(top[w1[j]]))
                                    + b1 * (a0 * Elem.ToF(bottom[w0[j]]) + a1 * Elem.ToF(bottom[w1[j]]));
                            dst[j] = Elem.FromF<T>(v);
                        }
                        continue;
                    }
                    // NHWC: whole channel vectors per tap, combined with the SIMD drivers
                    var buf = rented.AsSpan(0, 5 * c);
                    var acc = buf[..c];
                    var p00 = buf.Slice(c, c);
                    var p01 = buf.Slice(2 * c, c);
                    var p10 = buf.Slice(3 * c, c);
                    var p11 = buf.Slice(4 * c, c);
                    long rowTop = (plane * h + h0[i]) * w, rowBottom = (plane * h + h1[i]) * w;
                    for (int j = 0; j < ow; j++)
                    {
                        float a1 = lw[j], a0 = 1 - a1;
                        Elem.Load<T>(xs, (rowTop + w0[j]) * c, 1, p00);
                        if (mode == ResizeMode.Nearest)
                        {
                            Elem.Store<T>(p00, ys, ((plane * oh + i) * ow + j) * c, 1);
                            continue;
                        }
                        Elem.Load<T>(xs, (rowTop + w1[j]) * c, 1, p01);
                        Elem.Load<T>(xs, (rowBottom + w0[j]) * c, 1, p10);
                        Elem.Load<T>(xs, (rowBottom + w1[j]) * c, 1, p11);
                        Lerp(p00, p01, a0, a1, p00);
                        Lerp(p10, p11, a0, a1, p10);
                        Lerp(p00, p10, b0, b1, acc);
                        Elem.Store<T>(acc, ys, ((plane * oh + i) * ow + j) * c, 1);
                    }
                }
            }
            finally
            {
                if (rented is not null) ArrayPool<float>.Shared.Return(rented);
            }
        });
    }

    /// <summary>y = wa * a + wb * b over channel vectors (y may alias a).</summary>
    private static void Lerp(Span<float> a, ReadOnlySpan<float> b, float wa, float wb, Span<float> y)
    {
        SimdDrivers.BinaryScalar<float, MulOp<float>>(a, wa, false, y);
        for (int k = 0; k < b.Length; k++) y[k] += wb * b[k];
    }
}
