using System.Buffers;
using Osprey.Core.Backends;

namespace Osprey.Core.Cpu;

/// <summary>
/// Channels_last convolution as one implicit GEMM per group: Y[N*OH*OW, Og] = col · Wᵀ, where col row r is
/// output pixel r of the whole batch and col column p = (kh*KW + kw)*Cg + c. The weights are packed once
/// per call into the micro-kernel's B panels. The product is cut into tasks of up to 96 rows (and, when
/// rows are few, a range of B panels); each task builds its own slice of col, KC columns at a time,
/// straight into packed-A panel order in a small buffer that stays in cache, multiplies it by every B
/// panel of its range, and runs the epilogue on each finished tile. Tasks are taken dynamically
/// (<see cref="Parallel2.ForEach"/>), so the whole conv is one parallel loop over all images.
/// </summary>
public sealed partial class CpuBackend
{
    /// <summary>Target number of tasks per thread (more tasks: better balance under load; fewer: less repeated packing).</summary>
    private const int ConvTasksPerThread = 8;

    /// <summary>Rows of one task, in micro-kernel tiles (96 rows for the 12-row AVX-512 kernel).</summary>
    private const int ConvMaxTileRows = 8;

    private static unsafe void ConvNhwc(ConvGeometry g, float* x, long xLen, float* w, long wLen,
        float* bias, float* res, UnaryOp act, float* y, long yLen)
    {
        if (Gemm12x32Avx512.IsSupported) ConvNhwc<Gemm12x32Avx512>(g, x, xLen, w, wLen, bias, res, act, y, yLen);
        else if (Sgemm.UseAvx2) ConvNhwc<Gemm6x16Avx2>(g, x, xLen, w, wLen, bias, res, act, y, yLen);
        else ConvNhwc<Gemm4x4Scalar>(g, x, xLen, w, wLen, bias, res, act, y, yLen);
    }

    private static unsafe void ConvNhwc<TK>(ConvGeometry g, float* x, long xLen, float* w, long wLen,
        float* bias, float* res, UnaryOp act, float* y, long yLen) where TK : IGemmKernel
    {
        int og = g.O / g.Groups, kk = g.KH * g.KW * g.Cg;
        long rowsL = (long)g.N * g.OH * g.OW;
        if (rowsL > int.MaxValue / Math.Max(g.O, 1)) throw new NotSupportedException($"conv2d (cpu, channels_last): output of {rowsL} x {g.O} is too large");
        int rows = (int)rowsL;
        if (rows == 0 || og == 0) return;
        long wpLen = Sgemm.PackedBLength(kk, og);
        float[] wp = ArrayPool<float>.Shared.Rent((int)(wpLen * g.Groups));
        try
        {
            fixed (float* pwp = wp)
            {
                for (int gi = 0; gi < g.Groups; gi++)
                {
                    long wo = (long)gi * og * kk;
                    Sgemm.PackWholeB(kk, og, new MatRef(w + wo, wLen - wo, 1, kk), pwp + gi * wpLen, wp.Length - gi * wpLen);
                }
                var plan = new ConvNhwcPlan(g, (nint)x, xLen, (nint)pwp, wp.Length, wpLen, (nint)bias, (nint)res, act, (nint)y, yLen, rows, og, kk);
                plan.Split<TK>();
                long flops = 2L * rows * g.O * Math.Max(kk, 1);
                bool parallel = Environment.ProcessorCount > 1 && flops >= (1L << 19);
                long colLen = plan.SharedCol ? plan.SharedColLength<TK>() : 0;
                if (colLen > int.MaxValue) throw new NotSupportedException($"conv2d (cpu, channels_last): im2col of {colLen} floats is too large");
                float[] col = ArrayPool<float>.Shared.Rent((int)colLen);
                try
                {
                    fixed (float* pc = col)
                    {
                        nint pcol = (nint)pc;
                        plan.Col = pcol;
                        plan.ColLength = colLen;
                        if (plan.SharedCol)
                        {
                            long tiles = colLen / ((long)TK.MR * Math.Max(kk, 1));
                            if (parallel) Parallel2.For(tiles, (long)TK.MR * kk, (t0, t1) => plan.PackShared<TK>(pcol, colLen, t0, t1));
                            else plan.PackShared<TK>(pcol, colLen, 0, tiles);
                        }
                        if (parallel) Parallel2.ForEach(plan.Tasks, plan.RunTask<TK>);
                        else for (int t = 0; t < plan.Tasks; t++) plan.RunTask<TK>(t);
                    }
                }
                finally
                {
                    ArrayPool<float>.Shared.Return(col);
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(wp);
        }
    }

    /// <summary>One NHWC conv cut into tasks: (group, row block, column block).</summary>
    private sealed unsafe class ConvNhwcPlan(ConvGeometry g, nint x, long xLen, nint wp, long wpAll, long wpLen,
        nint bias, nint res, UnaryOp act, nint y, long yLen, int rows, int og, int kk)
    {
        private int _mBlock, _mBlocks, _nBlock, _nBlocks;
        private bool _sharedCol;

        public int Tasks { get; private set; }

        public void Split<TK>() where TK : IGemmKernel
        {
            int mTiles = (rows + TK.MR - 1) / TK.MR, nPanels = (og + TK.NR - 1) / TK.NR;
            int target = Environment.ProcessorCount * ConvTasksPerThread;
            // row blocks of 4 to 8 tiles, as many as the target asks for
            int mBlocks = Math.Max((mTiles + ConvMaxTileRows - 1) / ConvMaxTileRows, Math.Min(target, Math.Max(1, mTiles / 4)));
            if (mBlocks * g.Groups >= target)
            {
                // enough row blocks: each task packs its own rows of col, KC columns at a time
                _sharedCol = false;
                _nBlocks = 1;
            }
            else
            {
                // few rows (late layers, small batches): col is packed once, in parallel, and the tasks also
                // split the output channels, reading their rows of col from the shared buffer
                _sharedCol = true;
                _nBlocks = Math.Min(nPanels, (target + g.Groups - 1) / g.Groups);
                mBlocks = Math.Clamp((target + _nBlocks * g.Groups - 1) / (_nBlocks * g.Groups), 1, mTiles);
            }
            int tilesPerBlock = (mTiles + mBlocks - 1) / mBlocks;
            _mBlock = tilesPerBlock * TK.MR;
            _mBlocks = (rows + _mBlock - 1) / _mBlock;
            int panelsPerBlock = (nPanels + _nBlocks - 1) / _nBlocks;
            _nBlock = panelsPerBlock * TK.NR;
            _nBlocks = (og + _nBlock - 1) / _nBlock;
            Tasks = g.Groups * _mBlocks * _nBlocks;
        }

        /// <summary>True when col must be packed (<see cref="PackShared"/>) before the tasks run.</summary>
        public bool SharedCol => _sharedCol;

        /// <summary>Floats of the shared col buffer: every group's col, whole tiles, whole K.</summary>
        public long SharedColLength<TK>() where TK : IGemmKernel => (long)g.Groups * ((rows + TK.MR - 1) / TK.MR) * TK.MR * kk;

        /// <summary>Packs tile t (over all groups: t = group * tiles + tile) of the shared col, whole K.</summary>
        public void PackShared<TK>(nint col, long colLen, long t0, long t1) where TK : IGemmKernel
        {
            int mTiles = (rows + TK.MR - 1) / TK.MR;
            var xs = new ReadOnlySpan<float>((void*)x, (int)Math.Min(xLen, int.MaxValue));
            var cs = new Span<float>((void*)col, (int)Math.Min(colLen, int.MaxValue));
            for (long t = t0; t < t1; t++)
            {
                int gi = (int)(t / mTiles), tile = (int)(t % mTiles);
                int r0 = tile * TK.MR;
                var tileCol = cs.Slice((int)(t * TK.MR * kk), TK.MR * kk);
                for (int pc = 0; pc < kk; pc += Sgemm.KC)
                {
                    int kc = Math.Min(Sgemm.KC, kk - pc);
                    PackCol(gi, r0, Math.Min(rows, r0 + TK.MR), pc, kc, TK.MR, xs, tileCol.Slice(pc * TK.MR, kc * TK.MR));
                }
            }
        }

        /// <summary>The shared col buffer (set before the tasks run when <see cref="SharedCol"/>).</summary>
        public nint Col { get; set; }

        public long ColLength { get; set; }

        public void RunTask<TK>(int t) where TK : IGemmKernel
        {
            int gi = t / (_mBlocks * _nBlocks), rest = t % (_mBlocks * _nBlocks);
            int r0 = rest / _nBlocks * _mBlock, r1 = Math.Min(rows, r0 + _mBlock);
            int j0 = rest % _nBlocks * _nBlock, j1 = Math.Min(og, j0 + _nBlock);
            int kcMax = Math.Min(Sgemm.KC, kk);
            float[] aArr = ArrayPool<float>.Shared.Rent(_sharedCol ? 0 : _mBlock * kcMax);
            try
            {
                Block<TK>(gi, r0, r1, j0, j1, aArr);
            }
            finally
            {
                ArrayPool<float>.Shared.Return(aArr);
            }
        }

        private void Block<TK>(int gi, int r0, int r1, int j0, int j1, float[] aArr) where TK : IGemmKernel
        {
            int ldc = g.O;
            long cOff = (long)gi * og;
            var cs = new Span<float>((void*)(y + cOff * sizeof(float)), (int)Math.Min(yLen - cOff, int.MaxValue));
            var epi = new GemmEpilogue(bias == 0 ? null : (float*)bias + cOff, og, false,
                res == 0 ? null : (float*)res + cOff, yLen - cOff, act);
            var xs = new ReadOnlySpan<float>((void*)x, (int)Math.Min(xLen, int.MaxValue));
            var wAll = new ReadOnlySpan<float>((void*)wp, (int)Math.Min(wpAll, int.MaxValue));
            var wg = wAll.Slice((int)(gi * wpLen), (int)wpLen);
            var colAll = new ReadOnlySpan<float>((void*)Col, (int)Math.Min(ColLength, int.MaxValue));
            int mTiles = (rows + TK.MR - 1) / TK.MR;
            Span<float> tile = stackalloc float[TK.MR * TK.NR];
            if (kk == 0)
            {
                for (int i = r0; i < r1; i++) cs.Slice(i * ldc + j0, j1 - j0).Clear();
                if (!epi.IsNone) epi.Apply(cs, ldc, r0, j0, r1 - r0, j1 - j0);
                return;
            }
            for (int pc = 0; pc < kk; pc += Sgemm.KC)
            {
                int kc = Math.Min(Sgemm.KC, kk - pc);
                bool last = pc + kc == kk;
                var a = new Span<float>(aArr, 0, _sharedCol ? 0 : (r1 - r0 + TK.MR - 1) / TK.MR * TK.MR * kc);
                if (!_sharedCol) PackCol(gi, r0, r1, pc, kc, TK.MR, xs, a);
                for (int jr = j0; jr < j1; jr += TK.NR)
                {
                    int nr = Math.Min(TK.NR, j1 - jr);
                    var bp = wg.Slice((int)((long)jr / TK.NR * kk * TK.NR + (long)pc * TK.NR), kc * TK.NR);
                    for (int ir = r0; ir < r1; ir += TK.MR)
                    {
                        int mr = Math.Min(TK.MR, r1 - ir);
                        var ap = _sharedCol
                            ? colAll.Slice((int)(((long)gi * mTiles + ir / TK.MR) * kk * TK.MR + (long)pc * TK.MR), kc * TK.MR)
                            : a.Slice((ir - r0) / TK.MR * kc * TK.MR, kc * TK.MR);
                        int off = ir * ldc + jr;
                        if (mr == TK.MR && nr == TK.NR)
                            TK.Run(kc, ap, bp, cs.Slice(off), ldc, pc > 0);
                        else
                        {
                            TK.Run(kc, ap, bp, tile, TK.NR, false);
                            for (int i = 0; i < mr; i++)
                            {
                                var src = tile.Slice(i * TK.NR, nr);
                                var dst = cs.Slice(off + i * ldc, nr);
                                if (pc > 0) GemmEpilogue.AddVec(dst, src);
                                else src.CopyTo(dst);
                            }
                        }
                        if (last && !epi.IsNone) epi.ApplyTile(cs, ldc, ir, jr, mr, nr);
                    }
                }
            }
        }

        /// <summary>
        /// Columns [pc, pc+kc) (kc &lt;= KC) of col rows [r0, r1) in packed-A order: row r0 + t*mr + i, column
        /// pc + q at a[t*kc*mr + q*mr + i]; rows past r1 (up to a whole tile) are zero. Each tile's rows are
        /// gathered row-major with plain copies of contiguous runs, then transposed into the panel.
        /// </summary>
        private void PackCol(int gi, int r0, int r1, int pc, int kc, int mr, ReadOnlySpan<float> xs, Span<float> a)
        {
            int ohw = g.OH * g.OW, tiles = a.Length / (kc * mr);
            Span<float> buf = stackalloc float[mr * kc];
            for (int t = 0; t < tiles; t++)
            {
                int tr0 = r0 + t * mr, valid = Math.Min(mr, r1 - tr0);
                for (int i = 0; i < valid; i++)
                {
                    int r = tr0 + i, n = r / ohw, rem = r % ohw;
                    PackRow(gi, n, rem / g.OW, rem % g.OW, pc, kc, xs, buf.Slice(i * kc, kc));
                }
                if (valid < mr) buf.Slice(Math.Max(valid, 0) * kc).Clear();
                PanelTranspose.Run(buf, kc, mr, kc, a.Slice(t * kc * mr, kc * mr), mr);
            }
        }

        /// <summary>Columns [pc, pc+kc) of one col row (output pixel n, oh, ow) into dst (row-major).</summary>
        private void PackRow(int gi, int n, int oh, int ow, int pc, int kc, ReadOnlySpan<float> xs, Span<float> dst)
        {
            int tapCols = g.KW * g.Cg, pEnd = pc + kc;
            int iw0 = ow * g.SW - g.PW;
            // with one group and no dilation, the KW taps of one kernel row are KW*C contiguous input values
            bool rowRun = g.Cg == g.C && g.DW == 1;
            for (int kh = pc / tapCols; kh < g.KH && kh * tapCols < pEnd; kh++)
            {
                int p0 = kh * tapCols, ih = oh * g.SH - g.PH + kh * g.DH;
                if ((uint)ih >= (uint)g.H)
                {
                    Segment(p0, p0 + tapCols, -1, pc, pEnd, xs, dst);
                    continue;
                }
                long rowBase = ((long)n * g.H + ih) * g.W;
                if (rowRun)
                {
                    int kwLo = Math.Clamp(-iw0, 0, g.KW), kwHi = Math.Clamp(g.W - iw0, kwLo, g.KW);
                    Segment(p0, p0 + kwLo * g.Cg, -1, pc, pEnd, xs, dst);
                    Segment(p0 + kwLo * g.Cg, p0 + kwHi * g.Cg, (rowBase + iw0 + kwLo) * g.C, pc, pEnd, xs, dst);
                    Segment(p0 + kwHi * g.Cg, p0 + tapCols, -1, pc, pEnd, xs, dst);
                    continue;
                }
                for (int kw = 0; kw < g.KW; kw++)
                {
                    int iw = iw0 + kw * g.DW, q0 = p0 + kw * g.Cg;
                    if (q0 + g.Cg <= pc) continue;
                    if (q0 >= pEnd) break;
                    long src = (uint)iw < (uint)g.W ? (rowBase + iw) * g.C + (long)gi * g.Cg : -1;
                    Segment(q0, q0 + g.Cg, src, pc, pEnd, xs, dst);
                }
            }
        }

        /// <summary>Columns [p0, p1) ∩ [pc, pEnd) of one row: from xs[src + (p - p0)], or zero when src &lt; 0.</summary>
        private static void Segment(int p0, int p1, long src, int pc, int pEnd, ReadOnlySpan<float> xs, Span<float> dst)
        {
            int a = Math.Max(p0, pc), b = Math.Min(p1, pEnd);
            if (a >= b) return;
            if (src < 0) dst.Slice(a - pc, b - a).Clear();
            else xs.Slice((int)(src + (a - p0)), b - a).CopyTo(dst.Slice(a - pc, b - a));
        }
    }
}
