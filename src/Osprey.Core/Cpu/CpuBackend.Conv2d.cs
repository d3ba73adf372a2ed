using System.Buffers;
using Osprey.Core.Backends;
using Osprey.Core.Tensors;

namespace Osprey.Core.Cpu;

/// <summary>
/// Convolution as matrix products. NCHW: per image and group, Y[Og, OH*OW] = W[Og, Cg*KH*KW] · col,
/// where col is the im2col matrix (or the input itself for 1x1 stride-1 convs). NHWC: one implicit
/// GEMM over the whole batch (CpuBackend.Conv2dNhwc.cs). Depthwise convs use a direct kernel.
/// The epilogue runs on each finished GEMM tile while it is still in cache.
/// </summary>
public sealed partial class CpuBackend
{
    public unsafe void Conv2d(Tensor x, Tensor weight, Conv2dParams p, Epilogue epilogue, Tensor y)
    {
        ArgumentNullException.ThrowIfNull(p);
        ArgumentNullException.ThrowIfNull(epilogue);
        bool nhwc = !x.IsContiguous();
        var format = nhwc ? MemoryFormat.ChannelsLast : MemoryFormat.Contiguous;
        if (x.DType != DType.Float32)
        {
            using var xf = ToFloat32(x);
            using var wf = ToFloat32(weight);
            using var yf = Tensor.Empty(y.Shape, DType.Float32, y.Device, format);
            using var biasF = epilogue.Bias is null ? null : ToFloat32(epilogue.Bias);
            using var resF = epilogue.Residual is null ? null : ToFloat32(epilogue.Residual);
            Conv2d(xf, wf, p, new Epilogue(biasF, resF, epilogue.Activation), yf);
            FromFloat32(yf, y);
            return;
        }
        using var bias = epilogue.Bias is null ? null : Ops.Op.Dense(epilogue.Bias);
        using var res = epilogue.Residual is null ? null : Ops.Op.Dense(epilogue.Residual, format);
        var g = new ConvGeometry(x, weight, p);
        if (g.Groups == g.C && g.O == g.C)
        {
            ConvDepthwise(g, nhwc, x, weight, bias, res, epilogue.Activation, y);
            return;
        }
        fixed (float* px = Data<float>(x), pw = Data<float>(weight), py = Data<float>(y))
        {
            float* pBias = bias is null ? null : (float*)bias.DataPointer;
            float* pRes = res is null ? null : (float*)res.DataPointer;
            if (nhwc) ConvNhwc(g, px, x.Numel, pw, weight.Numel, pBias, pRes, epilogue.Activation, py, y.Numel);
            else ConvNchw(g, px, x.Numel, pw, weight.Numel, pBias, pRes, epilogue.Activation, py, y.Numel);
        }
    }

    private static unsafe void ConvNchw(ConvGeometry g, float* x, long xLen, float* w, long wLen,
        float* bias, float* res, UnaryOp act, float* y, long yLen)
    {
        int og = g.O / g.Groups, kk = g.Cg * g.KH * g.KW, ohw = g.OH * g.OW, hw = g.H * g.W;
        bool direct = g.IsPointwise;
        float[]? col = direct ? null : ArrayPool<float>.Shared.Rent(kk * ohw);
        try
        {
            fixed (float* pc = col)
            {
                for (int n = 0; n < g.N; n++)
                {
                    for (int gi = 0; gi < g.Groups; gi++)
                    {
                        long xo = ((long)n * g.C + gi * g.Cg) * hw;
                        MatRef bm;
                        if (direct) bm = new MatRef(x + xo, xLen - xo, hw, 1);
                        else
                        {
                            Im2ColNchw(g, new MatRef(x + xo, xLen - xo, 0, 0), (nint)pc, col!.Length);
                            bm = new MatRef(pc, col!.Length, ohw, 1);
                        }
                        long wo = (long)gi * og * kk, yo = ((long)n * g.O + gi * og) * ohw;
                        var am = new MatRef(w + wo, wLen - wo, kk, 1);
                        var epi = new GemmEpilogue(bias is null ? null : bias + gi * og, og, true, res is null ? null : res + yo, yLen - yo, act);
                        Sgemm.Run(og, ohw, kk, am, bm, y + yo, yLen - yo, ohw, epi);
                    }
                }
            }
        }
        finally
        {
            if (col is not null) ArrayPool<float>.Shared.Return(col);
        }
    }

    /// <summary>col[(c*KH + kh)*KW + kw, oh*OW + ow] = x[c, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw] (0 outside), for one image and group.</summary>
    private static unsafe void Im2ColNchw(ConvGeometry g, MatRef x, nint col, int colLen)
    {
        int rows = g.Cg * g.KH * g.KW, ohw = g.OH * g.OW;
        Parallel2.For(rows, ohw, (lo, hi) =>
        {
            var src = x.Span;
            var dst = new Span<float>((void*)col, colLen);
            for (long r = lo; r < hi; r++)
            {
                int c = (int)(r / (g.KH * g.KW)), kh = (int)(r / g.KW % g.KH), kw = (int)(r % g.KW);
                var plane = src.Slice(c * g.H * g.W, g.H * g.W);
                var drow = dst.Slice((int)r * ohw, ohw);
                int dx = kw * g.DW - g.PW;
                // output columns whose input column is inside [0, W)
                int owLo = Math.Clamp(CeilDiv(-dx, g.SW), 0, g.OW), owHi = Math.Clamp(CeilDiv(g.W - dx, g.SW), owLo, g.OW);
                for (int oh = 0; oh < g.OH; oh++)
                {
                    var d = drow.Slice(oh * g.OW, g.OW);
                    int ih = oh * g.SH - g.PH + kh * g.DH;
                    if ((uint)ih >= (uint)g.H) { d.Clear(); continue; }
                    d.Slice(0, owLo).Clear();
                    d.Slice(owHi).Clear();
                    var srow = plane.Slice(ih * g.W, g.W);
                    if (g.SW == 1) srow.Slice(owLo + dx, owHi - owLo).CopyTo(d.Slice(owLo, owHi - owLo));
                    else for (int ow = owLo; ow < owHi; ow++) d[ow] = srow[ow * g.SW + dx];
                }
            }
        });
    }

    private static int CeilDiv(int a, int b) => a >= 0 ? (a + b - 1) / b : -(-a / b);

    /// <summary>Sizes of one convolution, read once from the tensors.</summary>
    private readonly record struct ConvGeometry
    {
        public ConvGeometry(Tensor x, Tensor w, Conv2dParams p)
        {
            N = x.Shape[0]; C = x.Shape[1]; H = x.Shape[2]; W = x.Shape[3];
            O = w.Shape[0]; Cg = w.Shape[1]; KH = w.Shape[2]; KW = w.Shape[3];
            SH = p.StrideH; SW = p.StrideW; PH = p.PadH; PW = p.PadW; DH = p.DilationH; DW = p.DilationW;
            Groups = p.Groups;
            OH = p.OutH(H, KH); OW = p.OutW(W, KW);
        }

        public int N { get; }
        public int C { get; }
        public int H { get; }
        public int W { get; }
        public int O { get; }
        public int Cg { get; }
        public int KH { get; }
        public int KW { get; }
        public int SH { get; }
        public int SW { get; }
        public int PH { get; }
        public int PW { get; }
        public int DH { get; }
        public int DW { get; }
        public int Groups { get; }
        public int OH { get; }
        public int OW { get; }

        /// <summary>1x1, stride 1, no padding: the input already is the GEMM operand.</summary>
        public bool IsPointwise => KH == 1 && KW == 1 && SH == 1 && SW == 1 && PH == 0 && PW == 0;
    }
}
