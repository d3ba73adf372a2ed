using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Osprey.Core.Tensors;

namespace Osprey.Core.Cpu;

/// <summary>
/// Scalar element conversions, specialised per element type by the JIT (the typeof tests fold away).
/// Floating types travel as float (exact for float16/bfloat16), integer types and bool as long.
/// </summary>
internal static class Elem
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsFloat<T>() => typeof(T) == typeof(float) || typeof(T) == typeof(Half) || typeof(T) == typeof(BFloat16);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToF<T>(T v)
    {
        if (typeof(T) == typeof(float)) return Unsafe.As<T, float>(ref v);
        if (typeof(T) == typeof(Half)) return (float)Unsafe.As<T, Half>(ref v);
        if (typeof(T) == typeof(BFloat16)) return Unsafe.As<T, BFloat16>(ref v).ToFloat();
        return ToL(v);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long ToL<T>(T v)
    {
        if (typeof(T) == typeof(long)) return Unsafe.As<T, long>(ref v);
        if (typeof(T) == typeof(int)) return Unsafe.As<T, int>(ref v);
        if (typeof(T) == typeof(sbyte)) return Unsafe.As<T, sbyte>(ref v);
        if (typeof(T) == typeof(byte)) return Unsafe.As<T, byte>(ref v);
        if (typeof(T) == typeof(bool)) return Unsafe.As<T, bool>(ref v) ? 1 : 0;
        return FloatToLong(ToF(v));
    }

    /// <summary>
    /// Truncates toward zero to int64; NaN and values outside the int64 range give long.MinValue,
    /// what PyTorch's static_cast produces on x86 (cvttss2si).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long FloatToLong(float f) => f >= -9.223372E18f && f < 9.223372E18f ? (long)f : long.MinValue;

    /// <summary>Truncates toward zero to int32; NaN and out-of-range values give int.MinValue, as PyTorch on x86.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int FloatToInt(float f) => f >= -2147483648f && f < 2147483648f ? (int)f : int.MinValue;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T FromF<T>(float f)
    {
        if (typeof(T) == typeof(float)) return Unsafe.As<float, T>(ref f);
        if (typeof(T) == typeof(Half)) { var h = (Half)f; return Unsafe.As<Half, T>(ref h); }
        if (typeof(T) == typeof(BFloat16)) { var b = BFloat16.FromFloat(f); return Unsafe.As<BFloat16, T>(ref b); }
        if (typeof(T) == typeof(bool)) { bool b = f != 0; return Unsafe.As<bool, T>(ref b); }
        if (typeof(T) == typeof(long)) return FromL<T>(FloatToLong(f));
        return FromL<T>(FloatToInt(f)); // int32, and int8/uint8 through int32 then wrapping, as PyTorch
    }

    /// <summary>Integer narrowing wraps (two's complement), as C++ casts in PyTorch do.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T FromL<T>(long l)
    {
        if (typeof(T) == typeof(long)) return Unsafe.As<long, T>(ref l);
        if (typeof(T) == typeof(int)) { int v = unchecked((int)l); return Unsafe.As<int, T>(ref v); }
        if (typeof(T) == typeof(sbyte)) { sbyte v = unchecked((sbyte)l); return Unsafe.As<sbyte, T>(ref v); }
        if (typeof(T) == typeof(byte)) { byte v = unchecked((byte)l); return Unsafe.As<byte, T>(ref v); }
        if (typeof(T) == typeof(bool)) { bool b = l != 0; return Unsafe.As<bool, T>(ref b); }
        return FromF<T>(l);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TD Convert<TS, TD>(TS v) => IsFloat<TS>() ? FromF<TD>(ToF(v)) : FromL<TD>(ToL(v));

    /// <summary>Reads n elements (stride in elements) as float.</summary>
    public static void Load<T>(ReadOnlySpan<T> src, long offset, long stride, Span<float> dst) where T : unmanaged
    {
        if (stride == 1)
        {
            var s = src.Slice((int)offset, dst.Length);
            if (typeof(T) == typeof(float)) { MemoryMarshal.Cast<T, float>(s).CopyTo(dst); return; }
            for (int i = 0; i < dst.Length; i++) dst[i] = ToF(s[i]);
            return;
        }
        for (int i = 0; i < dst.Length; i++) dst[i] = ToF(src[(int)(offset + i * stride)]);
    }

    /// <summary>Writes n floats (stride in elements), rounding once to T.</summary>
    public static void Store<T>(ReadOnlySpan<float> src, Span<T> dst, long offset, long stride) where T : unmanaged
    {
        if (stride == 1)
        {
            var d = dst.Slice((int)offset, src.Length);
            if (typeof(T) == typeof(float)) { src.CopyTo(MemoryMarshal.Cast<T, float>(d)); return; }
            for (int i = 0; i < src.Length; i++) d[i] = FromF<T>(src[i]);
            return;
        }
        for (int i = 0; i < src.Length; i++) dst[(int)(offset + i * stride)] = FromF<T>(src[i]);
    }
}
