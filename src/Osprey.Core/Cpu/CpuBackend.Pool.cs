using System.Buffers;
using Osprey.Core.Backends;
using Osprey.Core.Tensors;

namespace Osprey.Core.Cpu;

public sealed partial class CpuBackend
{
    public void Pool2d(PoolKind kind, Tensor x, Pool2dParams p, Tensor y)
    {
        switch (x.DType)
        {
            case DType.Float32: PoolAs<float>(kind, x, p, y); break;
            case DType.Float16: PoolAs<Half>(kind, x, p, y); break;
            case DType.BFloat16: PoolAs<BFloat16>(kind, x, p, y); break;
            default: throw new OpArgumentException($"pool2d: needs a floating tensor, got {x.DType.Name()} {x.Shape}");
        }
    }

    private static void PoolAs<T>(PoolKind kind, Tensor x, Pool2dParams p, Tensor y) where T : unmanaged
    {
        if (x.IsContiguous()) PoolNchw<T>(kind, x, p, y);
        else PoolNhwc<T>(kind, x, p, y);
    }

    /// <summary>
    /// One pooling window, as PyTorch computes it: [h0, h1) x [w0, w1) clipped to the input, and the
    /// average's divisor: the window clipped to the padded input (count_include_pad) or the clipped count.
    /// </summary>
    private static (int H0, int H1, int W0, int W1, int Divisor) PoolWindow(Pool2dParams p, int oh, int ow, int h, int w)
    {
        int h0 = oh * p.StrideH - p.PadH, w0 = ow * p.StrideW - p.PadW;
        int h1 = Math.Min(h0 + p.KernelH, h + p.PadH), w1 = Math.Min(w0 + p.KernelW, w + p.PadW);
        int padded = (h1 - h0) * (w1 - w0);
        h0 = Math.Max(h0, 0);
        w0 = Math.Max(w0, 0);
        h1 = Math.Min(h1, h);
        w1 = Math.Min(w1, w);
        return (h0, h1, w0, w1, p.CountIncludePad ? padded : (h1 - h0) * (w1 - w0));
    }

    /// <summary>NCHW: one (n, c) plane per work item; NaN propagates through max, as torch.</summary>
    private static void PoolNchw<T>(PoolKind kind, Tensor x, Pool2dParams p, Tensor y) where T : unmanaged
    {
        int h = x.Shape[2], w = x.Shape[3], oh = y.Shape[2], ow = y.Shape[3];
        long planes = (long)x.Shape[0] * x.Shape[1];
        bool max = kind == PoolKind.Max;
        Parallel2.For(planes, (long)oh * ow * p.KernelH * p.KernelW, (lo, hi) =>
        {
            var xs = Data<T>(x);
            var ys = Data<T>(y);
            for (long pl = lo; pl < hi; pl++)
            {
                var src = xs.Slice((int)(pl * h * w), h * w);
                var dst = ys.Slice((int)(pl * oh * ow), oh * ow);
                for (int i = 0; i < oh; i++)
                    for (int j = 0; j < ow; j++)
                    {
                        var (h0, h1, w0, w1, div) = PoolWindow(p, i, j, h, w);
                        float acc = max ? float.NegativeInfinity : 0f;
                        for (int a = h0; a < h1; a++)
                        {
                            var row = src.Slice(a * w, w);
                            for (int b = w0; b < w1; b++)
                            {
                                float v = Elem.ToF(row[b]);
                                acc = max ? MathF.Max(acc, v) : acc + v; // MathF.Max propagates NaN, without a branch per element
                            }
                        }
                        dst[i * ow + j] = Elem.FromF<T>(max ? acc : acc / div);
                    }
            }
        });
    }

    /// <summary>NHWC: one output pixel's channel vector per step, whole input pixels accumulated with the SIMD drivers.</summary>
    private static void PoolNhwc<T>(PoolKind kind, Tensor x, Pool2dParams p, Tensor y) where T : unmanaged
    {
        int c = x.Shape[1], h = x.Shape[2], w = x.Shape[3], oh = y.Shape[2], ow = y.Shape[3];
        bool max = kind == PoolKind.Max;
        Parallel2.For((long)x.Shape[0] * oh, (long)ow * c * p.KernelH * p.KernelW, (lo, hi) =>
        {
            var xs = Data<T>(x);
            var ys = Data<T>(y);
            float[] rented = ArrayPool<float>.Shared.Rent(2 * c);
            try
            {
                var acc = rented.AsSpan(0, c);
                var px = rented.AsSpan(c, c);
                for (long r = lo; r < hi; r++)
                {
                    long n = r / oh;
                    int i = (int)(r % oh);
                    for (int j = 0; j < ow; j++)
                    {
                        var (h0, h1, w0, w1, div) = PoolWindow(p, i, j, h, w);
                        acc.Fill(max ? float.NegativeInfinity : 0f);
                        for (int a = h0; a < h1; a++)
                            for (int b = w0; b < w1; b++)
                            {
                                long at = ((n * h + a) * w + b) * c;
                                if (typeof(T) == typeof(float))
                                {
                                    var v = System.Runtime.InteropServices.MemoryMarshal.Cast<T, float>(xs.Slice((int)at, c));
                                    if (max) SimdDrivers.Binary<float, MaxNaNOp>(acc, v, acc);
                                    else SimdDrivers.Binary<float, AddOp<float>>(acc, v, acc);
                                    continue;
                                }
                                Elem.Load<T>(xs, at, 1, px);
                                if (max) SimdDrivers.Binary<float, MaxNaNOp>(acc, px, acc);
                                else SimdDrivers.Binary<float, AddOp<float>>(acc, px, acc);
                            }
                        if (!max) SimdDrivers.BinaryScalar<float, DivOp>(acc, div, false, acc);
                        Elem.Store<T>(acc, ys, ((n * oh + i) * ow + j) * c, 1);
                    }
                }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(rented);
            }
        });
    }
}
