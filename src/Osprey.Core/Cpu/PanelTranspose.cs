using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Osprey.Core.Cpu;

/// <summary>
/// The transpose that GEMM packing needs: rows of a source (a row of A, or a column of a transposed B)
/// become lanes of a packed panel. 8 x 8 blocks with AVX shuffles, then 4 x 4 blocks with SSE, then
/// scalars; the bounds are checked once on entry, so the unchecked loads and stores stay inside.
/// </summary>
internal static class PanelTranspose
{
    /// <summary>dst[p*dstStride + j] = src[j*srcStride + p] for every j &lt; rows and p &lt; len.</summary>
    public static void Run(ReadOnlySpan<float> src, int srcStride, int rows, int len, Span<float> dst, int dstStride)
    {
        if (rows <= 0 || len <= 0) return;
        if (dstStride < rows || (long)(rows - 1) * srcStride + len > src.Length || (long)(len - 1) * dstStride + rows > dst.Length)
            ThrowRange(rows, len, srcStride, src.Length, dstStride, dst.Length);
        ref float s = ref MemoryMarshal.GetReference(src);
        ref float d = ref MemoryMarshal.GetReference(dst);
        int j = 0;
        if (Avx.IsSupported)
        {
            for (; j + 8 <= rows; j += 8)
            {
                int p = 0;
                for (; p + 8 <= len; p += 8) Block8(ref Unsafe.Add(ref s, j * srcStride + p), srcStride, ref Unsafe.Add(ref d, p * dstStride + j), dstStride);
                Scalar(ref s, srcStride, j, j + 8, p, len, ref d, dstStride);
            }
            for (; j + 4 <= rows; j += 4)
            {
                int p = 0;
                for (; p + 4 <= len; p += 4) Block4(ref Unsafe.Add(ref s, j * srcStride + p), srcStride, ref Unsafe.Add(ref d, p * dstStride + j), dstStride);
                Scalar(ref s, srcStride, j, j + 4, p, len, ref d, dstStride);
            }
        }
        Scalar(ref s, srcStride, j, rows, 0, len, ref d, dstStride);
    }

    private static void Scalar(ref float s, int srcStride, int j0, int j1, int p0, int p1, ref float d, int dstStride)
    {
        for (int j = j0; j < j1; j++)
            for (int p = p0; p < p1; p++)
                Unsafe.Add(ref d, p * dstStride + j) = Unsafe.Add(ref s, j * srcStride + p);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Block8(ref float s, int ss, ref float d, int ds)
    {
        var r0 = Vector256.LoadUnsafe(ref s);
        var r1 = Vector256.LoadUnsafe(ref Unsafe.Add(ref s, ss));
        var r2 = Vector256.LoadUnsafe(ref Unsafe.Add(ref s, 2 * ss));
        var r3 = Vector256.LoadUnsafe(ref Unsafe.Add(ref s, 3 * ss));
        var r4 = Vector256.LoadUnsafe(ref Unsafe.Add(ref s, 4 * ss));
        var r5 = Vector256.LoadUnsafe(ref Unsafe.Add(ref s, 5 * ss));
        var r6 = Vector256.LoadUnsafe(ref Unsafe.Add(ref s, 6 * ss));
        var r7 = Vector256.LoadUnsafe(ref Unsafe.Add(ref s, 7 * ss));
        // pairs interleaved, then quads, then the 128-bit halves swapped into place
        var t0 = Avx.UnpackLow(r0, r1);
        var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3);
        var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5);
        var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7);
        var t7 = Avx.UnpackHigh(r6, r7);
        var u0 = Avx.Shuffle(t0, t2, 0x44);
        var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44);
        var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44);
        var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44);
        var u7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Permute2x128(u0, u4, 0x20).StoreUnsafe(ref d);
        Avx.Permute2x128(u1, u5, 0x20).StoreUnsafe(ref Unsafe.Add(ref d, ds));
        Avx.Permute2x128(u2, u6, 0x20).StoreUnsafe(ref Unsafe.Add(ref d, 2 * ds));
        Avx.Permute2x128(u3, u7, 0x20).StoreUnsafe(ref Unsafe.Add(ref d, 3 * ds));
        Avx.Permute2x128(u0, u4, 0x31).StoreUnsafe(ref Unsafe.Add(ref d, 4 * ds));
        Avx.Permute2x128(u1, u5, 0x31).StoreUnsafe(ref Unsafe.Add(ref d, 5 * ds));
        Avx.Permute2x128(u2, u6, 0x31).StoreUnsafe(ref Unsafe.Add(ref d, 6 * ds));
        Avx.Permute2x128(u3, u7, 0x31).StoreUnsafe(ref Unsafe.Add(ref d, 7 * ds));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Block4(ref float s, int ss, ref float d, int ds)
    {
        var r0 = Vector128.LoadUnsafe(ref s);
        var r1 = Vector128.LoadUnsafe(ref Unsafe.Add(ref s, ss));
        var r2 = Vector128.LoadUnsafe(ref Unsafe.Add(ref s, 2 * ss));
        var r3 = Vector128.LoadUnsafe(ref Unsafe.Add(ref s, 3 * ss));
        var t0 = Sse.UnpackLow(r0, r1);
        var t1 = Sse.UnpackLow(r2, r3);
        var t2 = Sse.UnpackHigh(r0, r1);
        var t3 = Sse.UnpackHigh(r2, r3);
        Sse.MoveLowToHigh(t0, t1).StoreUnsafe(ref d);
        Sse.MoveHighToLow(t1, t0).StoreUnsafe(ref Unsafe.Add(ref d, ds));
        Sse.MoveLowToHigh(t2, t3).StoreUnsafe(ref Unsafe.Add(ref d, 2 * ds));
        Sse.MoveHighToLow(t3, t2).StoreUnsafe(ref Unsafe.Add(ref d, 3 * ds));
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowRange(int rows, int len, int srcStride, int src, int dstStride, int dst) =>
        throw new InvalidOperationException($"panel transpose: {rows} rows x {len} (source stride {srcStride}, {src} floats; destination stride {dstStride}, {dst} floats) out of range");
}
