using System.Buffers;
using System.Numerics;
using Osprey.Core.Backends;
using Osprey.Core.Tensors;

namespace Osprey.Core.Cpu;

/// <summary>
/// Depthwise convolution (groups == C == O): a direct kernel, no im2col. NCHW vectorises along output
/// rows (stride 1) per channel plane; NHWC vectorises across channels with the weights transposed to
/// [KH*KW, C] once per call. Bias, residual and activation are applied to each finished output row.
/// </summary>
public sealed partial class CpuBackend
{
    private static void ConvDepthwise(ConvGeometry g, bool nhwc, Tensor x, Tensor w, Tensor? bias, Tensor? res, UnaryOp act, Tensor y)
    {
        if (nhwc) DepthwiseNhwc(g, x, w, bias, res, act, y);
        else DepthwiseNchw(g, x, w, bias, res, act, y);
    }

    private static void DepthwiseNchw(ConvGeometry g, Tensor x, Tensor w, Tensor? bias, Tensor? res, UnaryOp act, Tensor y)
    {
        int taps = g.KH * g.KW;
        Parallel2.For((long)g.N * g.C, (long)g.OH * g.OW * taps, (lo, hi) =>
        {
            var xs = Data<float>(x);
            var ws = Data<float>(w);
            var ys = Data<float>(y);
            var bs = bias is null ? default : Data<float>(bias);
            var rs = res is null ? default : Data<float>(res);
            for (long plane = lo; plane < hi; plane++)
            {
                int c = (int)(plane % g.C);
                var xp = xs.Slice((int)(plane * g.H * g.W), g.H * g.W);
                var wk = ws.Slice(c * taps, taps);
                for (int oh = 0; oh < g.OH; oh++)
                {
                    int yo = (int)((plane * g.OH + oh) * g.OW);
                    var yrow = ys.Slice(yo, g.OW);
                    yrow.Fill(bias is null ? 0f : bs[c]);
                    for (int kh = 0; kh < g.KH; kh++)
                    {
                        int ih = oh * g.SH - g.PH + kh * g.DH;
                        if ((uint)ih >= (uint)g.H) continue;
                        var xrow = xp.Slice(ih * g.W, g.W);
                        for (int kw = 0; kw < g.KW; kw++)
                        {
                            float wv = wk[kh * g.KW + kw];
                            int dx = kw * g.DW - g.PW;
                            int owLo = Math.Clamp(CeilDiv(-dx, g.SW), 0, g.OW), owHi = Math.Clamp(CeilDiv(g.W - dx, g.SW), owLo, g.OW);
                            if (g.SW == 1) Axpy(wv, xrow.Slice(owLo + dx, owHi - owLo), yrow.Slice(owLo, owHi - owLo));
                            else for (int ow = owLo; ow < owHi; ow++) yrow[ow] += wv * xrow[ow * g.SW + dx];
                        }
                    }
                    if (res is not null) GemmEpilogue.AddVec(yrow, rs.Slice(yo, g.OW));
                    Activation.Apply(act, yrow);
                }
            }
        });
    }

    private static void DepthwiseNhwc(ConvGeometry g, Tensor x, Tensor w, Tensor? bias, Tensor? res, UnaryOp act, Tensor y)
    {
        int taps = g.KH * g.KW, c = g.C;
        float[] wt = ArrayPool<float>.Shared.Rent(taps * c);
        try
        {
            // w is [C, 1, KH, KW] (same bytes in either format since Cg == 1): transpose to [KH*KW, C]
            var ws = Data<float>(w);
            for (int ch = 0; ch < c; ch++)
                for (int t = 0; t < taps; t++) wt[t * c + ch] = ws[ch * taps + t];
            Parallel2.For((long)g.N * g.OH, (long)g.OW * c * taps, (lo, hi) =>
            {
                var xs = Data<float>(x);
                var ys = Data<float>(y);
                var bs = bias is null ? default : Data<float>(bias).Slice(0, c);
                var rs = res is null ? default : Data<float>(res);
                var wts = new ReadOnlySpan<float>(wt, 0, taps * c);
                for (long row = lo; row < hi; row++)
                {
                    int n = (int)(row / g.OH), oh = (int)(row % g.OH);
                    int yo = (int)(row * g.OW * c);
                    var yrow = ys.Slice(yo, g.OW * c);
                    var ximg = xs.Slice((int)((long)n * g.H * g.W * c), g.H * g.W * c);
                    for (int ow = 0; ow < g.OW; ow++)
                    {
                        var acc = yrow.Slice(ow * c, c);
                        if (bias is null) acc.Clear();
                        else bs.CopyTo(acc);
                        for (int kh = 0; kh < g.KH; kh++)
                        {
                            int ih = oh * g.SH - g.PH + kh * g.DH;
                            if ((uint)ih >= (uint)g.H) continue;
                            for (int kw = 0; kw < g.KW; kw++)
                            {
                                int iw = ow * g.SW - g.PW + kw * g.DW;
                                if ((uint)iw >= (uint)g.W) continue;
                                MulAdd(ximg.Slice((ih * g.W + iw) * c, c), wts.Slice((kh * g.KW + kw) * c, c), acc);
                            }
                        }
                    }
                    if (res is not null) GemmEpilogue.AddVec(yrow, rs.Slice(yo, g.OW * c));
                    Activation.Apply(act, yrow);
                }
            });
        }
        finally
        {
            ArrayPool<float>.Shared.Return(wt);
        }
    }

    /// <summary>y += a * x.</summary>
    private static void Axpy(float a, ReadOnlySpan<float> x, Span<float> y)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var va = new Vector<float>(a);
            for (; i <= y.Length - Vector<float>.Count; i += Vector<float>.Count)
                Vector.FusedMultiplyAdd(va, new Vector<float>(x.Slice(i)), new Vector<float>(y.Slice(i))).CopyTo(y.Slice(i));
        }
        for (; i < y.Length; i++) y[i] += a * x[i];
    }

    /// <summary>acc += x * w, element-wise.</summary>
    private static void MulAdd(ReadOnlySpan<float> x, ReadOnlySpan<float> w, Span<float> acc)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
            for (; i <= acc.Length - Vector<float>.Count; i += Vector<float>.Count)
                Vector.FusedMultiplyAdd(new Vector<float>(x.Slice(i)), new Vector<float>(w.Slice(i)), new Vector<float>(acc.Slice(i))).CopyTo(acc.Slice(i));
        for (; i < acc.Length; i++) acc[i] += x[i] * w[i];
    }
}
