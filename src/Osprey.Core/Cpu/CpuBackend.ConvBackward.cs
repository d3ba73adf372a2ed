using System.Buffers;
using Osprey.Core.Backends;
using Osprey.Core.Tensors;

namespace Osprey.Core.Cpu;

/// <summary>
/// Convolution backward as matrix products with the forward's SGEMM, per image and group (NCHW):
/// data: dcol[Cg*KH*KW, OH*OW] = Wᵀ · dY, then col2im adds each column back to its input pixel;
/// filter: dW[Og, Cg*KH*KW] += dY · colᵀ with col the forward's im2col matrix. 1x1 stride-1 convolutions
/// use the tensors themselves. NHWC operands are converted to NCHW first (a copy: an NHWC-native path is future work).
/// </summary>
public sealed partial class CpuBackend
{
    public unsafe void Conv2dBackwardData(Tensor gy, Tensor weight, Conv2dParams p, Tensor gx)
    {
        ArgumentNullException.ThrowIfNull(p);
        RequireFloat32("conv2d_backward_data", gy);
        if (!gy.IsContiguous() || !weight.IsContiguous() || !gx.IsContiguous())
        {
            using var gyc = Ops.Op.Dense(gy);
            using var wc = Ops.Op.Dense(weight);
            using var gxc = Tensor.Empty(gx.Shape, DType.Float32);
            Conv2dBackwardData(gyc, wc, p, gxc);
            Copy(gxc, gx);
            return;
        }
        var g = new ConvGeometry(gx, weight, p);
        int og = g.O / g.Groups, kk = g.Cg * g.KH * g.KW, ohw = g.OH * g.OW, hw = g.H * g.W;
        bool direct = g.IsPointwise;
        float[]? col = direct ? null : ArrayPool<float>.Shared.Rent(kk * ohw);
        try
        {
            fixed (float* pgy = Data<float>(gy), pw = Data<float>(weight), pgx = Data<float>(gx), pc = col)
            {
                long gyLen = gy.Numel, wLen = weight.Numel, gxLen = gx.Numel;
                var none = new GemmEpilogue(null, 0, false, null, 0, UnaryOp.None);
                for (int n = 0; n < g.N; n++)
                    for (int gi = 0; gi < g.Groups; gi++)
                    {
                        long wo = (long)gi * og * kk, yo = ((long)n * g.O + gi * og) * ohw, xo = ((long)n * g.C + gi * g.Cg) * hw;
                        var wT = new MatRef(pw + wo, wLen - wo, 1, kk);        // [kk, og] view of W [og, kk]
                        var dy = new MatRef(pgy + yo, gyLen - yo, ohw, 1);
                        if (direct)
                        {
                            Sgemm.Run(kk, ohw, og, wT, dy, pgx + xo, gxLen - xo, hw, none);
                            continue;
                        }
                        Sgemm.Run(kk, ohw, og, wT, dy, pc, col!.Length, ohw, none);
                        Col2ImNchw(g, (nint)pc, col.Length, (nint)(pgx + xo), gxLen - xo);
                    }
            }
        }
        finally
        {
            if (col is not null) ArrayPool<float>.Shared.Return(col);
        }
    }

    /// <summary>x[c, ih, iw] = sum of col[(c*KH + kh)*KW + kw, oh*OW + ow] over the taps that read it; one image and group; channels in parallel.</summary>
    private static unsafe void Col2ImNchw(ConvGeometry g, nint col, int colLen, nint x, long xLen)
    {
        int ohw = g.OH * g.OW, hw = g.H * g.W;
        Parallel2.For(g.Cg, (long)g.KH * g.KW * ohw, (lo, hi) =>
        {
            var src = new ReadOnlySpan<float>((void*)col, colLen);
            var dst = new Span<float>((void*)x, (int)Math.Min(xLen, int.MaxValue));
            for (long c = lo; c < hi; c++)
            {
                var plane = dst.Slice((int)c * hw, hw);
                plane.Clear();
                for (int kh = 0; kh < g.KH; kh++)
                    for (int kw = 0; kw < g.KW; kw++)
                    {
                        var srow = src.Slice((int)((c * g.KH + kh) * g.KW + kw) * ohw, ohw);
                        int dx = kw * g.DW - g.PW;
                        int owLo = Math.Clamp(CeilDiv(-dx, g.SW), 0, g.OW), owHi = Math.Clamp(CeilDiv(g.W - dx, g.SW), owLo, g.OW);
                        for (int oh = 0; oh < g.OH; oh++)
                        {
                            int ih = oh * g.SH - g.PH + kh * g.DH;
                            if ((uint)ih >= (uint)g.H) continue;
                            var s = srow.Slice(oh * g.OW, g.OW);
                            var d = plane.Slice(ih * g.W, g.W);
                            if (g.SW == 1) GemmEpilogue.AddVec(d.Slice(owLo + dx, owHi - owLo), s.Slice(owLo, owHi - owLo));
                            else for (int ow = owLo; ow < owHi; ow++) d[ow * g.SW + dx] += s[ow];
                        }
                    }
            }
        });
    }

    public unsafe void Conv2dBackwardFilter(Tensor x, Tensor gy, Conv2dParams p, Tensor gw)
    {
        ArgumentNullException.ThrowIfNull(p);
        RequireFloat32("conv2d_backward_filter", gy);
        if (!gy.IsContiguous() || !x.IsContiguous() || !gw.IsContiguous())
        {
            using var gyc = Ops.Op.Dense(gy);
            using var xc = Ops.Op.Dense(x);
            using var gwc = Tensor.Empty(gw.Shape, DType.Float32);
            Conv2dBackwardFilter(xc, gyc, p, gwc);
            Copy(gwc, gw);
            return;
        }
        var g = new ConvGeometry(x, gw, p);
        int og = g.O / g.Groups, kk = g.Cg * g.KH * g.KW, ohw = g.OH * g.OW, hw = g.H * g.W;
        bool direct = g.IsPointwise;
        float[]? col = direct ? null : ArrayPool<float>.Shared.Rent(kk * ohw);
        float[] part = ArrayPool<float>.Shared.Rent(og * kk);
        try
        {
            fixed (float* pgy = Data<float>(gy), px = Data<float>(x), pgw = Data<float>(gw), pc = col, pp = part)
            {
                long gyLen = gy.Numel, xLen = x.Numel, gwLen = gw.Numel;
                var none = new GemmEpilogue(null, 0, false, null, 0, UnaryOp.None);
                for (int gi = 0; gi < g.Groups; gi++)
                {
                    long wo = (long)gi * og * kk;
                    var dw = new Span<float>(pgw + wo, og * kk);
                    for (int n = 0; n < g.N; n++)
                    {
                        long yo = ((long)n * g.O + gi * og) * ohw, xo = ((long)n * g.C + gi * g.Cg) * hw;
                        var dy = new MatRef(pgy + yo, gyLen - yo, ohw, 1);
                        MatRef colT;                                      // [ohw, kk] view of col [kk, ohw]
                        if (direct) colT = new MatRef(px + xo, xLen - xo, 1, hw);
                        else
                        {
                            Im2ColNchw(g, new MatRef(px + xo, xLen - xo, 0, 0), (nint)pc, col!.Length);
                            colT = new MatRef(pc, col!.Length, 1, ohw);
                        }
                        if (n == 0) Sgemm.Run(og, kk, ohw, dy, colT, pgw + wo, gwLen - wo, kk, none);
                        else
                        {
                            Sgemm.Run(og, kk, ohw, dy, colT, pp, part.Length, kk, none);
                            GemmEpilogue.AddVec(dw, new ReadOnlySpan<float>(pp, og * kk));
                        }
                    }
                }
            }
        }
        finally
        {
            if (col is not null) ArrayPool<float>.Shared.Return(col);
            ArrayPool<float>.Shared.Return(part);
        }
    }
}
