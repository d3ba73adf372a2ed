using Osprey.Core.Backends;
using Osprey.Core.Tensors;

namespace Osprey.Core.Cpu;

/// <summary>
/// Pooling and resize backward (float32, NCHW; NHWC operands go through an NCHW copy): one (n, c) plane per
/// work item, so overlapping windows and taps accumulate without races.
/// </summary>
public sealed partial class CpuBackend
{
    public void Pool2dBackward(PoolKind kind, Tensor x, Tensor gy, Pool2dParams p, Tensor gx)
    {
        ArgumentNullException.ThrowIfNull(p);
        RequireFloat32("pool2d_backward", gy);
        if (!x.IsContiguous() || !gy.IsContiguous() || !gx.IsContiguous())
        {
            using var xc = Ops.Op.Dense(x);
            using var gyc = Ops.Op.Dense(gy);
            using var gxc = Tensor.Empty(gx.Shape, DType.Float32);
            Pool2dBackward(kind, xc, gyc, p, gxc);
            Copy(gxc, gx);
            return;
        }
        int h = x.Shape[2], w = x.Shape[3], oh = gy.Shape[2], ow = gy.Shape[3];
        bool max = kind == PoolKind.Max;
        Parallel2.For((long)x.Shape[0] * x.Shape[1], (long)oh * ow * p.KernelH * p.KernelW, (lo, hi) =>
        {
            var xs = Data<float>(x);
            var gs = Data<float>(gy);
            var ds = Data<float>(gx);
            for (long pl = lo; pl < hi; pl++)
            {
                var src = xs.Slice((int)(pl * h * w), h * w);
                var g = gs.Slice((int)(pl * oh * ow), oh * ow);
                var dst = ds.Slice((int)(pl * h * w), h * w);
                dst.Clear();
                for (int i = 0; i < oh; i++)
                    for (int j = 0; j < ow; j++)
                    {
                        var (h0, h1, w0, w1, div) = PoolWindow(p, i, j, h, w);
                        float v = g[i * ow + j];
                        if (!max)
                        {
                            float share = v / div;
                            for (int a = h0; a < h1; a++)
                                for (int b = w0; b < w1; b++) dst[a * w + b] += share;
                            continue;
                        }
                        int best = -1;
                        float bestValue = float.NegativeInfinity;
                        for (int a = h0; a < h1 && !float.IsNaN(bestValue); a++)
                            for (int b = w0; b < w1; b++)
                            {
                                float e = src[a * w + b];
                                if (best < 0 || e > bestValue || float.IsNaN(e))
                                {
                                    best = a * w + b;
                                    bestValue = e;
                                    if (float.IsNaN(e)) break;
                                }
                            }
                        if (best >= 0) dst[best] += v;
                    }
            }
        });
    }

    public void ResizeBackward(ResizeMode mode, Tensor gy, Tensor gx)
    {
        RequireFloat32("interpolate_backward", gy);
        if (!gy.IsContiguous() || !gx.IsContiguous())
        {
            using var gyc = Ops.Op.Dense(gy);
            using var gxc = Tensor.Empty(gx.Shape, DType.Float32);
            ResizeBackward(mode, gyc, gxc);
            Copy(gxc, gx);
            return;
        }
        int h = gx.Shape[2], w = gx.Shape[3], oh = gy.Shape[2], ow = gy.Shape[3];
        var taps = new int[2 * (oh + ow)];
        var weights = new float[oh + ow];
        ResizeTaps(mode, h, oh, taps.AsSpan(0, oh), taps.AsSpan(oh, oh), weights.AsSpan(0, oh));
        ResizeTaps(mode, w, ow, taps.AsSpan(2 * oh, ow), taps.AsSpan(2 * oh + ow, ow), weights.AsSpan(oh, ow));
        Parallel2.For((long)gx.Shape[0] * gx.Shape[1], (long)oh * ow * 4, (lo, hi) =>
        {
            var gs = Data<float>(gy);
            var ds = Data<float>(gx);
            ReadOnlySpan<int> h0 = taps.AsSpan(0, oh), h1 = taps.AsSpan(oh, oh), w0 = taps.AsSpan(2 * oh, ow), w1 = taps.AsSpan(2 * oh + ow, ow);
            ReadOnlySpan<float> lh = weights.AsSpan(0, oh), lw = weights.AsSpan(oh, ow);
            for (long pl = lo; pl < hi; pl++)
            {
                var g = gs.Slice((int)(pl * oh * ow), oh * ow);
                var dst = ds.Slice((int)(pl * h * w), h * w);
                dst.Clear();
                for (int i = 0; i < oh; i++)
                {
                    var top = dst.Slice(h0[i] * w, w);
                    var bottom = dst.Slice(h1[i] * w, w);
                    float b1 = lh[i], b0 = 1 - b1;
                    var row = g.Slice(i * ow, ow);
                    if (mode == ResizeMode.Nearest)
                    {
                        for (int j = 0; j < ow; j++) top[w0[j]] += row[j];
                        continue;
                    }
                    for (int j = 0; j < ow; j++)
                    {
                        float a1 = lw[j], a0 = 1 - a1, v = row[j];
                        top[w0[j]] += b0 * a0 * v;
                        top[w1[j]] += b0 * a1 * v;
                        bottom[w0[j]] += b1 * a0 * v;
                        bottom[w1[j]] += b1 * a1 * v;
                    }
                }
            }
        });
    }
}
