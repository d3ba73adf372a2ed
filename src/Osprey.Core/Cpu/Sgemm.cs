using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Osprey.Core.Backends;

namespace Osprey.Core.Cpu;

/// <summary>A float matrix in native memory: element (i, j) at Ptr[i*Rs + j*Cs]; Length floats are reachable from Ptr.</summary>
internal readonly unsafe struct MatRef(float* ptr, long length, long rs, long cs, bool packed = false, bool packedB = false)
{
    public readonly nint Ptr = (nint)ptr;
    public readonly long Length = length;
    public readonly long Rs = rs;
    public readonly long Cs = cs;

    /// <summary>A is already in packed panel order for the whole K: element (i, p) at [(i / MR) * K * MR + p * MR + i % MR], MR = <see cref="Sgemm.PanelRows"/>.</summary>
    public readonly bool IsPacked = packed;

    public static MatRef PackedA(float* ptr, long length) => new(ptr, length, 0, 0, true);

    /// <summary>B is already in packed panel order for the whole K (<see cref="Sgemm.PackWholeB"/>): element (p, j) at [(j / NR) * K * NR + p * NR + j % NR], NR = <see cref="Sgemm.PanelCols"/>.</summary>
    public readonly bool IsPackedB = packedB;

    public static MatRef PackedB(float* ptr, long length) => new(ptr, length, 0, 0, false, true);

    public ReadOnlySpan<float> Span => new((void*)Ptr, (int)Math.Min(Length, int.MaxValue));
}

/// <summary>
/// What runs on each finished C tile: c = act(c + bias + residual). Bias is indexed by C's row
/// (conv NCHW: channel = row) or column (matmul, conv NHWC); the residual has C's layout (same ldc).
/// Pointers are already offset to this product's C(0, 0).
/// </summary>
internal readonly unsafe struct GemmEpilogue(float* bias, int biasLength, bool biasPerRow, float* residual, long residualLength, UnaryOp activation)
{
    private readonly nint _bias = (nint)bias;
    private readonly nint _residual = (nint)residual;
    public readonly int BiasLength = biasLength;
    public readonly bool BiasPerRow = biasPerRow;
    public readonly long ResidualLength = residualLength;
    public readonly UnaryOp Activation = activation;

    public bool IsNone => _bias == 0 && _residual == 0 && Activation.Kind == UnaryKind.Identity;

    /// <summary>Applies the epilogue to rows [row, row+rows) and columns [col, col+cols) of C.</summary>
    public void Apply(Span<float> c, long ldc, int row, int col, int rows, int cols)
    {
        var bias = new ReadOnlySpan<float>((void*)_bias, _bias == 0 ? 0 : BiasLength);
        var res = new ReadOnlySpan<float>((void*)_residual, _residual == 0 ? 0 : (int)Math.Min(ResidualLength, int.MaxValue));
        for (int i = 0; i < rows; i++)
        {
            long off = (row + i) * ldc + col;
            var y = c.Slice((int)off, cols);
            if (_bias != 0)
            {
                if (BiasPerRow) AddScalar(y, bias[row + i]);
                else AddVec(y, bias.Slice(col, cols));
            }
            if (_residual != 0) AddVec(y, res.Slice((int)off, cols));
            Cpu.Activation.Apply(Activation, y);
        }
    }

    /// <summary>
    /// <see cref="Apply"/> for a tile whose width is a whole number of vectors, in one pass per row when the
    /// activation is identity or relu (the common fused case); other activations take <see cref="Apply"/>.
    /// Same operations in the same order as <see cref="Apply"/>, so the results are identical.
    /// </summary>
    public void ApplyTile(Span<float> c, long ldc, int row, int col, int rows, int cols)
    {
        var kind = Activation.Kind;
        if (kind != UnaryKind.Identity && kind != UnaryKind.Relu) Apply(c, ldc, row, col, rows, cols);
        else if (Vector512.IsHardwareAccelerated && cols % Vector512<float>.Count == 0) ApplyTile512(c, ldc, row, col, rows, cols, kind == UnaryKind.Relu);
        else if (Vector256.IsHardwareAccelerated && cols % Vector256<float>.Count == 0) ApplyTile256(c, ldc, row, col, rows, cols, kind == UnaryKind.Relu);
        else Apply(c, ldc, row, col, rows, cols);
    }

    private void ApplyTile512(Span<float> c, long ldc, int row, int col, int rows, int cols, bool relu)
    {
        var bias = new ReadOnlySpan<float>((void*)_bias, _bias == 0 ? 0 : BiasLength);
        var res = new ReadOnlySpan<float>((void*)_residual, _residual == 0 ? 0 : (int)Math.Min(ResidualLength, int.MaxValue));
        bool hasBias = _bias != 0, hasRes = _residual != 0, colBias = hasBias && !BiasPerRow;
        ReadOnlySpan<float> bv = colBias ? bias.Slice(col, cols) : default;
        ref float pb = ref MemoryMarshal.GetReference(bv);
        for (int i = 0; i < rows; i++)
        {
            int off = (int)((row + i) * ldc + col);
            var y = c.Slice(off, cols);
            var r = hasRes ? res.Slice(off, cols) : default;
            ref float py = ref MemoryMarshal.GetReference(y);
            ref float pr = ref MemoryMarshal.GetReference(r);
            var rowBias = Vector512.Create(hasBias && BiasPerRow ? bias[row + i] : 0f);
            for (int j = 0; j < cols; j += Vector512<float>.Count)
            {
                var v = Vector512.LoadUnsafe(ref py, (nuint)j);
                if (colBias) v += Vector512.LoadUnsafe(ref pb, (nuint)j);
                else if (hasBias) v += rowBias;
                if (hasRes) v += Vector512.LoadUnsafe(ref pr, (nuint)j);
                // relu as Activation defines it: x > 0 ? x : (NaN ? x : 0)
                if (relu) v = Vector512.ConditionalSelect(Vector512.GreaterThan(v, Vector512<float>.Zero) | ~Vector512.Equals(v, v), v, Vector512<float>.Zero);
                v.StoreUnsafe(ref py, (nuint)j);
            }
        }
    }

    private void ApplyTile256(Span<float> c, long ldc, int row, int col, int rows, int cols, bool relu)
    {
        var bias = new ReadOnlySpan<float>((void*)_bias, _bias == 0 ? 0 : BiasLength);
        var res = new ReadOnlySpan<float>((void*)_residual, _residual == 0 ? 0 : (int)Math.Min(ResidualLength, int.MaxValue));
        bool hasBias = _bias != 0, hasRes = _residual != 0, colBias = hasBias && !BiasPerRow;
        ReadOnlySpan<float> bv = colBias ? bias.Slice(col, cols) : default;
        ref float pb = ref MemoryMarshal.GetReference(bv);
        for (int i = 0; i < rows; i++)
        {
            int off = (int)((row + i) * ldc + col);
            var y = c.Slice(off, cols);
            var r = hasRes ? res.Slice(off, cols) : default;
            ref float py = ref MemoryMarshal.GetReference(y);
            ref float pr = ref MemoryMarshal.GetReference(r);
            var rowBias = Vector256.Create(hasBias && BiasPerRow ? bias[row + i] : 0f);
            for (int j = 0; j < cols; j += Vector256<float>.Count)
            {
                var v = Vector256.LoadUnsafe(ref py, (nuint)j);
                if (colBias) v += Vector256.LoadUnsafe(ref pb, (nuint)j);
                else if (hasBias) v += rowBias;
                if (hasRes) v += Vector256.LoadUnsafe(ref pr, (nuint)j);
                if (relu) v = Vector256.ConditionalSelect(Vector256.GreaterThan(v, Vector256<float>.Zero) | ~Vector256.Equals(v, v), v, Vector256<float>.Zero);
                v.StoreUnsafe(ref py, (nuint)j);
            }
        }
    }

    internal static void AddVec(Span<float> y, ReadOnlySpan<float> x)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
            for (; i <= y.Length - Vector<float>.Count; i += Vector<float>.Count)
                (new Vector<float>(y.Slice(i)) + new Vector<float>(x.Slice(i))).CopyTo(y.Slice(i));
        for (; i < y.Length; i++) y[i] += x[i];
    }

    internal static void AddScalar(Span<float> y, float s)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var v = new Vector<float>(s);
            for (; i <= y.Length - Vector<float>.Count; i += Vector<float>.Count)
                (new Vector<float>(y.Slice(i)) + v).CopyTo(y.Slice(i));
        }
        for (; i < y.Length; i++) y[i] += s;
    }
}

/// <summary>
/// Single-precision matrix product C = A·B (then the epilogue), Goto/BLIS style: B is packed in
/// KC x NC blocks of NR-wide panels, A in MC x KC blocks of MR-high panels, and a register-tiled
/// micro-kernel (AVX-512, AVX2 or scalar, picked once) computes each MR x NR tile. The work is split
/// over threads along whichever of M or N has more tiles; each thread packs its own operands into
/// pooled scratch, so nothing is allocated per tile and threads never wait on each other.
/// </summary>
internal static unsafe class Sgemm
{
    internal const int KC = 256;
    private const int NC = 1024;
    private const long MinParallelFlops = 1L << 18;

    /// <summary>The micro-kernel this process uses (for benchmarks and tests).</summary>
    public static string KernelName =>
        Gemm12x32Avx512.IsSupported ? "avx512 12x32" : UseAvx2 ? "avx2 6x16" : "scalar 4x4";

    /// <summary>MR of the micro-kernel in use: the panel height of a pre-packed A (<see cref="MatRef.PackedA"/>).</summary>
    public static int PanelRows => Gemm12x32Avx512.IsSupported ? Gemm12x32Avx512.MR : UseAvx2 ? Gemm6x16Avx2.MR : Gemm4x4Scalar.MR;

    /// <summary>NR of the micro-kernel in use: the panel width of a pre-packed B (<see cref="MatRef.PackedB"/>).</summary>
    public static int PanelCols => Gemm12x32Avx512.IsSupported ? Gemm12x32Avx512.NR : UseAvx2 ? Gemm6x16Avx2.NR : Gemm4x4Scalar.NR;

    /// <summary>
    /// True when <see cref="Run"/> would give every thread all of B (it splits M over several threads),
    /// so each would pack the same B: then packing it once beforehand (<see cref="PackWholeB"/>) pays.
    /// </summary>
    public static bool SharesB(int m, int n, int k)
    {
        int mr = PanelRows, nr = PanelCols;
        int mTiles = (m + mr - 1) / mr, nTiles = (n + nr - 1) / nr;
        long flops = (long)m * n * Math.Max(k, 1);
        return Environment.ProcessorCount > 1 && flops >= MinParallelFlops && mTiles >= nTiles && mTiles > 1;
    }

    /// <summary>Floats a whole-K packed B of k x n takes (n rounded up to whole panels).</summary>
    public static long PackedBLength(int k, int n) => (long)(n + PanelCols - 1) / PanelCols * PanelCols * k;

    /// <summary>
    /// Packs all of B (k x n) once into NR-wide panels over the whole K, so one packing serves every
    /// product (and every thread) that multiplies by the same B; the panels are split over threads.
    /// </summary>
    public static void PackWholeB(int k, int n, MatRef b, float* dst, long dstLength)
    {
        if (dstLength < PackedBLength(k, n)) throw new ArgumentException($"sgemm pack B: {dstLength} floats cannot hold {k}x{n} packed ({PackedBLength(k, n)})");
        if (Gemm12x32Avx512.IsSupported) PackWholeB<Gemm12x32Avx512>(k, n, b, dst, dstLength);
        else if (UseAvx2) PackWholeB<Gemm6x16Avx2>(k, n, b, dst, dstLength);
        else PackWholeB<Gemm4x4Scalar>(k, n, b, dst, dstLength);
    }

    private static void PackWholeB<TK>(int k, int n, MatRef b, float* dst, long dstLength) where TK : IGemmKernel
    {
        int panels = (n + TK.NR - 1) / TK.NR;
        nint d = (nint)dst;
        Parallel2.For(panels, (long)TK.NR * k, (lo, hi) =>
        {
            var dsts = new Span<float>((void*)d, (int)Math.Min(dstLength, int.MaxValue));
            var src = b.Span;
            for (long q = lo; q < hi; q++)
            {
                // one panel, KC rows of it at a time: the same cache footprint as the per-block packing
                int j0 = (int)q * TK.NR, cols = Math.Min(TK.NR, n - j0);
                for (int pc = 0; pc < k; pc += KC)
                {
                    int kc = Math.Min(KC, k - pc);
                    PackB<TK>(src, b.Rs, b.Cs, pc, kc, j0, cols, dsts.Slice((int)(q * k * TK.NR + (long)pc * TK.NR), kc * TK.NR));
                }
            }
        });
    }

    internal static bool UseAvx2 => Gemm6x16Avx2.IsSupported && Fma.IsSupported;

    /// <summary>C (m x n, row stride ldc, cLength floats reachable) = A (m x k) · B (k x n), then the epilogue.</summary>
    public static void Run(int m, int n, int k, MatRef a, MatRef b, float* c, long cLength, long ldc, GemmEpilogue epi)
    {
        if (m <= 0 || n <= 0) return;
        if (Gemm12x32Avx512.IsSupported) Run<Gemm12x32Avx512>(m, n, k, a, b, c, cLength, ldc, epi);
        else if (UseAvx2) Run<Gemm6x16Avx2>(m, n, k, a, b, c, cLength, ldc, epi);
        else Run<Gemm4x4Scalar>(m, n, k, a, b, c, cLength, ldc, epi);
    }

    private static void Run<TK>(int m, int n, int k, MatRef a, MatRef b, float* c, long cLength, long ldc, GemmEpilogue epi)
        where TK : IGemmKernel
    {
        var job = new Job(m, n, k, a, b, (nint)c, cLength, ldc, epi);
        int threads = Environment.ProcessorCount;
        long flops = (long)m * n * Math.Max(k, 1);
        int mTiles = (m + TK.MR - 1) / TK.MR, nTiles = (n + TK.NR - 1) / TK.NR;
        job.SplitM = mTiles >= nTiles;
        int units = job.SplitM ? mTiles : nTiles;
        job.Tasks = threads <= 1 || flops < MinParallelFlops ? 1 : Math.Min(units, threads);
        if (job.Tasks == 1) job.RunTask<TK>(0);
        else Parallel2.ForEach(job.Tasks, job.RunTask<TK>);
    }

    private sealed class Job(int m, int n, int k, MatRef a, MatRef b, nint c, long cLength, long ldc, GemmEpilogue epi)
    {
        public bool SplitM;
        public int Tasks;

        public void RunTask<TK>(int t) where TK : IGemmKernel
        {
            int m0 = 0, m1 = m, n0 = 0, n1 = n;
            if (SplitM)
            {
                int tiles = (m + TK.MR - 1) / TK.MR;
                m0 = Math.Min(m, tiles * t / Tasks * TK.MR);
                m1 = Math.Min(m, tiles * (t + 1) / Tasks * TK.MR);
            }
            else
            {
                int tiles = (n + TK.NR - 1) / TK.NR;
                n0 = Math.Min(n, tiles * t / Tasks * TK.NR);
                n1 = Math.Min(n, tiles * (t + 1) / Tasks * TK.NR);
            }
            if (m0 < m1 && n0 < n1) Block<TK>(m0, m1, n0, n1);
        }

        private void Block<TK>(int m0, int m1, int n0, int n1) where TK : IGemmKernel
        {
            var cs = new Span<float>((void*)c, (int)Math.Min(cLength, int.MaxValue));
            if (k == 0)
            {
                for (int i = m0; i < m1; i++) cs.Slice((int)(i * ldc + n0), n1 - n0).Clear();
                if (!epi.IsNone) epi.Apply(cs, ldc, m0, n0, m1 - m0, n1 - n0);
                return;
            }
            int mc = 128 / TK.MR * TK.MR;
            int kcMax = Math.Min(KC, k), ncMax = Math.Min(NC, n1 - n0);
            int nPanels = (ncMax + TK.NR - 1) / TK.NR, mPanels = (Math.Min(mc, m1 - m0) + TK.MR - 1) / TK.MR;
            float[] bArr = ArrayPool<float>.Shared.Rent(b.IsPackedB ? 0 : nPanels * TK.NR * kcMax);
            float[] aArr = ArrayPool<float>.Shared.Rent(a.IsPacked ? 0 : mPanels * TK.MR * kcMax);
            try
            {
                Span<float> tile = stackalloc float[TK.MR * TK.NR];
                var aSrc = a.Span;
                var bSrc = b.Span;
                for (int jc = n0; jc < n1; jc += NC)
                {
                    int nc = Math.Min(NC, n1 - jc);
                    for (int pc = 0; pc < k; pc += KC)
                    {
                        int kc = Math.Min(KC, k - pc);
                        bool last = pc + kc == k;
                        if (!b.IsPackedB) PackB<TK>(bSrc, b.Rs, b.Cs, pc, kc, jc, nc, bArr);
                        for (int ic = m0; ic < m1; ic += mc)
                        {
                            int mcc = Math.Min(mc, m1 - ic);
                            if (!a.IsPacked) PackA<TK>(aSrc, a.Rs, a.Cs, ic, mcc, pc, kc, aArr);
                            for (int jr = 0; jr < nc; jr += TK.NR)
                            {
                                int nr = Math.Min(TK.NR, nc - jr);
                                var bp = b.IsPackedB
                                    ? bSrc.Slice((int)((long)(jc + jr) / TK.NR * k * TK.NR + (long)pc * TK.NR), kc * TK.NR)
                                    : new ReadOnlySpan<float>(bArr, jr / TK.NR * kc * TK.NR, kc * TK.NR);
                                for (int ir = 0; ir < mcc; ir += TK.MR)
                                {
                                    int mr = Math.Min(TK.MR, mcc - ir);
                                    var ap = a.IsPacked
                                        ? aSrc.Slice((int)((long)(ic + ir) / TK.MR * k * TK.MR + (long)pc * TK.MR), kc * TK.MR)
                                        : new ReadOnlySpan<float>(aArr, ir / TK.MR * kc * TK.MR, kc * TK.MR);
                                    int row = ic + ir, col = jc + jr;
                                    long off = row * ldc + col;
                                    if (mr == TK.MR && nr == TK.NR)
                                        TK.Run(kc, ap, bp, cs.Slice((int)off), (int)ldc, pc > 0);
                                    else
                                    {
                                        TK.Run(kc, ap, bp, tile, TK.NR, false);
                                        for (int i = 0; i < mr; i++)
                                        {
                                            var src = tile.Slice(i * TK.NR, nr);
                                            var dst = cs.Slice((int)(off + i * ldc), nr);
                                            if (pc > 0) GemmEpilogue.AddVec(dst, src);
                                            else src.CopyTo(dst);
                                        }
                                    }
                                    if (last && !epi.IsNone) epi.ApplyTile(cs, ldc, row, col, mr, nr);
                                }
                            }
                        }
                    }
                }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(aArr);
                ArrayPool<float>.Shared.Return(bArr);
            }
        }
    }

    /// <summary>Packs A[i0:i0+mc, p0:p0+kc] as MR-high panels: dst[q*kc*MR + p*MR + i] (rows past mc are zero).</summary>
    private static void PackA<TK>(ReadOnlySpan<float> a, long rs, long cs, int i0, int mc, int p0, int kc, Span<float> dst)
        where TK : IGemmKernel
    {
        int mr = TK.MR;
        for (int q = 0; q * mr < mc; q++)
        {
            int rows = Math.Min(mr, mc - q * mr);
            var d = dst.Slice(q * kc * mr, kc * mr);
            if (rows < mr) d.Clear();
            long r0 = i0 + q * mr;
            if (cs == 1)
            {
                PanelTranspose.Run(a.Slice((int)(r0 * rs + p0)), (int)rs, rows, kc, d, mr);
            }
            else if (rs == 1)
            {
                for (int p = 0; p < kc; p++)
                    a.Slice((int)((p0 + p) * cs + r0), rows).CopyTo(d.Slice(p * mr, rows));
            }
            else
            {
                for (int p = 0; p < kc; p++)
                    for (int i = 0; i < rows; i++)
                        d[p * mr + i] = a[(int)((r0 + i) * rs + (p0 + p) * cs)];
            }
        }
    }

    /// <summary>Packs B[p0:p0+kc, j0:j0+nc] as NR-wide panels: dst[q*kc*NR + p*NR + j] (columns past nc are zero).</summary>
    private static void PackB<TK>(ReadOnlySpan<float> b, long rs, long cs, int p0, int kc, int j0, int nc, Span<float> dst)
        where TK : IGemmKernel
    {
        int nr = TK.NR;
        for (int q = 0; q * nr < nc; q++)
        {
            int cols = Math.Min(nr, nc - q * nr);
            var d = dst.Slice(q * kc * nr, kc * nr);
            if (cols < nr) d.Clear();
            long c0 = j0 + q * nr;
            if (cs == 1)
            {
                for (int p = 0; p < kc; p++)
                    b.Slice((int)((p0 + p) * rs + c0), cols).CopyTo(d.Slice(p * nr, cols));
            }
            else if (rs == 1)
            {
                // transposed source: columns of B are rows in memory
                PanelTranspose.Run(b.Slice((int)(c0 * cs + p0)), (int)cs, cols, kc, d, nr);
            }
            else
            {
                for (int p = 0; p < kc; p++)
                    for (int j = 0; j < cols; j++)
                        d[p * nr + j] = b[(int)((p0 + p) * rs + (c0 + j) * cs)];
            }
        }
    }

    /// <summary>dst[p*stride + lane] = src[p] for every p: one row of A (or column of B) into its packed panel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Scatter(ReadOnlySpan<float> src, Span<float> dst, int lane, int stride)
    {
        // checked once here, so the unchecked stores below stay inside dst
        if ((uint)lane >= (uint)stride || (long)src.Length * stride > dst.Length) ThrowPack(src.Length, dst.Length, lane, stride);
        ref float s = ref MemoryMarshal.GetReference(src);
        ref float d = ref Unsafe.Add(ref MemoryMarshal.GetReference(dst), lane);
        int n = src.Length, p = 0;
        for (; p <= n - 4; p += 4)
        {
            Unsafe.Add(ref d, p * stride) = Unsafe.Add(ref s, p);
            Unsafe.Add(ref d, (p + 1) * stride) = Unsafe.Add(ref s, p + 1);
            Unsafe.Add(ref d, (p + 2) * stride) = Unsafe.Add(ref s, p + 2);
            Unsafe.Add(ref d, (p + 3) * stride) = Unsafe.Add(ref s, p + 3);
        }
        for (; p < n; p++) Unsafe.Add(ref d, p * stride) = Unsafe.Add(ref s, p);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowPack(int src, int dst, int lane, int stride) =>
        throw new InvalidOperationException($"sgemm pack: {src} values at lane {lane} of stride {stride} do not fit {dst}");
}
