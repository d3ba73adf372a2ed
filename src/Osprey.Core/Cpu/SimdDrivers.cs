using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Osprey.Core.Cpu;

/// <summary>A float32 function of one value with up to two parameters, at every SIMD width.</summary>
internal interface IUnaryOperator
{
    /// <summary>False when only the scalar form is worth running.</summary>
    static abstract bool Vectorizable { get; }
    static abstract float Invoke(float x, float a, float b);
    static abstract Vector128<float> Invoke(Vector128<float> x, float a, float b);
    static abstract Vector256<float> Invoke(Vector256<float> x, float a, float b);
    static abstract Vector512<float> Invoke(Vector512<float> x, float a, float b);
}

/// <summary>A function of two values of one numeric type, at every SIMD width.</summary>
internal interface IBinaryOperator<T> where T : unmanaged
{
    static abstract bool Vectorizable { get; }
    static abstract T Invoke(T a, T b);
    static abstract Vector128<T> Invoke(Vector128<T> a, Vector128<T> b);
    static abstract Vector256<T> Invoke(Vector256<T> a, Vector256<T> b);
    static abstract Vector512<T> Invoke(Vector512<T> a, Vector512<T> b);
}

/// <summary>
/// The span drivers: one loop per kernel shape that runs the widest accelerated vector, then the
/// narrower ones, then scalars for the last few elements. Inputs and output may be the same span.
/// </summary>
internal static class SimdDrivers
{
    public static void Unary<TOp>(ReadOnlySpan<float> x, Span<float> y, float a, float b) where TOp : struct, IUnaryOperator
    {
        if (x.Length > y.Length) ThrowShort();
        int n = x.Length, i = 0;
        ref float xs = ref MemoryMarshal.GetReference(x);
        ref float ys = ref MemoryMarshal.GetReference(y);
        if (TOp.Vectorizable)
        {
            if (Vector512.IsHardwareAccelerated)
                for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
                    TOp.Invoke(Vector512.LoadUnsafe(ref xs, (nuint)i), a, b).StoreUnsafe(ref ys, (nuint)i);
            if (Vector256.IsHardwareAccelerated)
                for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
                    TOp.Invoke(Vector256.LoadUnsafe(ref xs, (nuint)i), a, b).StoreUnsafe(ref ys, (nuint)i);
            if (Vector128.IsHardwareAccelerated)
                for (; i <= n - Vector128<float>.Count; i += Vector128<float>.Count)
                    TOp.Invoke(Vector128.LoadUnsafe(ref xs, (nuint)i), a, b).StoreUnsafe(ref ys, (nuint)i);
        }
        for (; i < n; i++) Unsafe.Add(ref ys, i) = TOp.Invoke(Unsafe.Add(ref xs, i), a, b);
    }

    public static void Binary<T, TOp>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> y)
        where T : unmanaged where TOp : struct, IBinaryOperator<T>
    {
        if (a.Length != b.Length || a.Length > y.Length) ThrowShort();
        int n = a.Length, i = 0;
        ref T ar = ref MemoryMarshal.GetReference(a);
        ref T br = ref MemoryMarshal.GetReference(b);
        ref T yr = ref MemoryMarshal.GetReference(y);
        if (TOp.Vectorizable)
        {
            if (Vector512.IsHardwareAccelerated && Vector512<T>.IsSupported && n >= Vector512<T>.Count)
                for (; i <= n - Vector512<T>.Count; i += Vector512<T>.Count)
                    TOp.Invoke(Vector512.LoadUnsafe(ref ar, (nuint)i), Vector512.LoadUnsafe(ref br, (nuint)i)).StoreUnsafe(ref yr, (nuint)i);
            if (Vector256.IsHardwareAccelerated && Vector256<T>.IsSupported)
                for (; i <= n - Vector256<T>.Count; i += Vector256<T>.Count)
                    TOp.Invoke(Vector256.LoadUnsafe(ref ar, (nuint)i), Vector256.LoadUnsafe(ref br, (nuint)i)).StoreUnsafe(ref yr, (nuint)i);
            if (Vector128.IsHardwareAccelerated && Vector128<T>.IsSupported)
                for (; i <= n - Vector128<T>.Count; i += Vector128<T>.Count)
                    TOp.Invoke(Vector128.LoadUnsafe(ref ar, (nuint)i), Vector128.LoadUnsafe(ref br, (nuint)i)).StoreUnsafe(ref yr, (nuint)i);
        }
        for (; i < n; i++) Unsafe.Add(ref yr, i) = TOp.Invoke(Unsafe.Add(ref ar, i), Unsafe.Add(ref br, i));
    }

    /// <summary>y = a op s (or s op a when <paramref name="scalarFirst"/>): one operand broadcast along the row.</summary>
    public static void BinaryScalar<T, TOp>(ReadOnlySpan<T> a, T s, bool scalarFirst, Span<T> y)
        where T : unmanaged where TOp : struct, IBinaryOperator<T>
    {
        if (a.Length > y.Length) ThrowShort();
        int n = a.Length, i = 0;
        ref T ar = ref MemoryMarshal.GetReference(a);
        ref T yr = ref MemoryMarshal.GetReference(y);
        if (TOp.Vectorizable)
        {
            if (Vector512.IsHardwareAccelerated && Vector512<T>.IsSupported && n >= Vector512<T>.Count)
            {
                var sv = Vector512.Create(s);
                for (; i <= n - Vector512<T>.Count; i += Vector512<T>.Count)
                {
                    var v = Vector512.LoadUnsafe(ref ar, (nuint)i);
                    (scalarFirst ? TOp.Invoke(sv, v) : TOp.Invoke(v, sv)).StoreUnsafe(ref yr, (nuint)i);
                }
            }
            if (Vector256.IsHardwareAccelerated && Vector256<T>.IsSupported)
            {
                var sv = Vector256.Create(s);
                for (; i <= n - Vector256<T>.Count; i += Vector256<T>.Count)
                {
                    var v = Vector256.LoadUnsafe(ref ar, (nuint)i);
                    (scalarFirst ? TOp.Invoke(sv, v) : TOp.Invoke(v, sv)).StoreUnsafe(ref yr, (nuint)i);
                }
            }
            if (Vector128.IsHardwareAccelerated && Vector128<T>.IsSupported)
            {
                var sv = Vector128.Create(s);
                for (; i <= n - Vector128<T>.Count; i += Vector128<T>.Count)
                {
                    var v = Vector128.LoadUnsafe(ref ar, (nuint)i);
                    (scalarFirst ? TOp.Invoke(sv, v) : TOp.Invoke(v, sv)).StoreUnsafe(ref yr, (nuint)i);
                }
            }
        }
        for (; i < n; i++)
        {
            T v = Unsafe.Add(ref ar, i);
            Unsafe.Add(ref yr, i) = scalarFirst ? TOp.Invoke(s, v) : TOp.Invoke(v, s);
        }
    }

    /// <summary>Sum of floats accumulated in float64 (SIMD lanes widened), so long rows keep float32 accuracy.</summary>
    public static double Sum(ReadOnlySpan<float> x)
    {
        int n = x.Length, i = 0;
        ref float xr = ref MemoryMarshal.GetReference(x);
        double total = 0;
        if (Vector512.IsHardwareAccelerated && n >= Vector512<float>.Count)
        {
            Vector512<double> s0 = default, s1 = default;
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                s0 += WidenLower(Vector256.LoadUnsafe(ref xr, (nuint)i));
                s1 += WidenLower(Vector256.LoadUnsafe(ref xr, (nuint)(i + 8)));
            }
            total = Vector512.Sum(s0 + s1);
        }
        else if (Vector256.IsHardwareAccelerated && n >= Vector256<float>.Count)
        {
            Vector256<double> s0 = default, s1 = default;
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var (lo, hi) = Vector256.Widen(Vector256.LoadUnsafe(ref xr, (nuint)i));
                s0 += lo;
                s1 += hi;
            }
            total = Vector256.Sum(s0 + s1);
        }
        for (; i < n; i++) total += Unsafe.Add(ref xr, i);
        return total;
    }

    /// <summary>8 floats to 8 doubles in one instruction (vcvtps2pd) where AVX-512 is there.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<double> WidenLower(Vector256<float> v)
    {
        if (Avx512F.IsSupported) return Avx512F.ConvertToVector512Double(v);
        var (lo, hi) = Vector256.Widen(v);
        return Vector512.Create(lo, hi);
    }

    /// <summary>acc[i] += x[i] in float64.</summary>
    public static void Accumulate(ReadOnlySpan<float> x, Span<double> acc)
    {
        if (x.Length > acc.Length) ThrowShort();
        int n = x.Length, i = 0;
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref double ar = ref MemoryMarshal.GetReference(acc);
        if (Vector512.IsHardwareAccelerated)
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                (Vector512.LoadUnsafe(ref ar, (nuint)i) + WidenLower(Vector256.LoadUnsafe(ref xr, (nuint)i))).StoreUnsafe(ref ar, (nuint)i);
                (Vector512.LoadUnsafe(ref ar, (nuint)(i + 8)) + WidenLower(Vector256.LoadUnsafe(ref xr, (nuint)(i + 8)))).StoreUnsafe(ref ar, (nuint)(i + 8));
            }
        if (Vector256.IsHardwareAccelerated)
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var (lo, hi) = Vector256.Widen(Vector256.LoadUnsafe(ref xr, (nuint)i));
                (Vector256.LoadUnsafe(ref ar, (nuint)i) + lo).StoreUnsafe(ref ar, (nuint)i);
                (Vector256.LoadUnsafe(ref ar, (nuint)(i + 4)) + hi).StoreUnsafe(ref ar, (nuint)(i + 4));
            }
        for (; i < n; i++) Unsafe.Add(ref ar, i) += Unsafe.Add(ref xr, i);
    }

    /// <summary>y[i] += s * x[i] (separate multiply and add, no fused rounding, so every width gives the same bits).</summary>
    public static void Axpy(ReadOnlySpan<float> x, float s, Span<float> y)
    {
        if (x.Length > y.Length) ThrowShort();
        int n = x.Length, i = 0;
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        if (Vector512.IsHardwareAccelerated)
        {
            var sv = Vector512.Create(s);
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
                (Vector512.LoadUnsafe(ref yr, (nuint)i) + Vector512.LoadUnsafe(ref xr, (nuint)i) * sv).StoreUnsafe(ref yr, (nuint)i);
        }
        if (Vector256.IsHardwareAccelerated)
        {
            var sv = Vector256.Create(s);
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
                (Vector256.LoadUnsafe(ref yr, (nuint)i) + Vector256.LoadUnsafe(ref xr, (nuint)i) * sv).StoreUnsafe(ref yr, (nuint)i);
        }
        for (; i < n; i++) Unsafe.Add(ref yr, i) += s * Unsafe.Add(ref xr, i);
    }

    /// <summary>Largest element (NaN if any is NaN); -infinity for an empty span.</summary>
    public static float Max(ReadOnlySpan<float> x)
    {
        int n = x.Length, i = 0;
        ref float xr = ref MemoryMarshal.GetReference(x);
        float best = float.NegativeInfinity;
        if (Vector512.IsHardwareAccelerated && n >= Vector512<float>.Count)
        {
            var m = Vector512.Create(float.NegativeInfinity);
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count) m = Vector512.Max(m, Vector512.LoadUnsafe(ref xr, (nuint)i));
            for (int j = 0; j < Vector512<float>.Count; j++) best = MaxNaN(best, m[j]);
        }
        else if (Vector256.IsHardwareAccelerated && n >= Vector256<float>.Count)
        {
            var m = Vector256.Create(float.NegativeInfinity);
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count) m = Vector256.Max(m, Vector256.LoadUnsafe(ref xr, (nuint)i));
            for (int j = 0; j < Vector256<float>.Count; j++) best = MaxNaN(best, m[j]);
        }
        for (; i < n; i++) best = MaxNaN(best, Unsafe.Add(ref xr, i));
        return best;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float MaxNaN(float a, float b) => b > a || float.IsNaN(b) ? b : a;

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void ThrowShort() => throw new ArgumentException("span driver: destination shorter than source or operand lengths differ");
}
