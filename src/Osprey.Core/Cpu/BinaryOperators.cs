using System.Numerics;
using System.Runtime.Intrinsics;

namespace Osprey.Core.Cpu;

// Arithmetic on one numeric type T: float (float16/bfloat16 compute as float) or an integer type.
// Integer arithmetic wraps, as PyTorch's does.

internal struct AddOp<T> : IBinaryOperator<T> where T : unmanaged, INumber<T>
{
    public static bool Vectorizable => true;
    public static T Invoke(T a, T b) => a + b;
    public static Vector128<T> Invoke(Vector128<T> a, Vector128<T> b) => a + b;
    public static Vector256<T> Invoke(Vector256<T> a, Vector256<T> b) => a + b;
    public static Vector512<T> Invoke(Vector512<T> a, Vector512<T> b) => a + b;
}

internal struct SubOp<T> : IBinaryOperator<T> where T : unmanaged, INumber<T>
{
    public static bool Vectorizable => true;
    public static T Invoke(T a, T b) => a - b;
    public static Vector128<T> Invoke(Vector128<T> a, Vector128<T> b) => a - b;
    public static Vector256<T> Invoke(Vector256<T> a, Vector256<T> b) => a - b;
    public static Vector512<T> Invoke(Vector512<T> a, Vector512<T> b) => a - b;
}

internal struct MulOp<T> : IBinaryOperator<T> where T : unmanaged, INumber<T>
{
    // byte/sbyte products have no x86 instruction; their emulation is slower than the scalar loop
    public static bool Vectorizable => typeof(T) != typeof(byte) && typeof(T) != typeof(sbyte);
    public static T Invoke(T a, T b) => a * b;
    public static Vector128<T> Invoke(Vector128<T> a, Vector128<T> b) => a * b;
    public static Vector256<T> Invoke(Vector256<T> a, Vector256<T> b) => a * b;
    public static Vector512<T> Invoke(Vector512<T> a, Vector512<T> b) => a * b;
}

/// <summary>Float division (true division).</summary>
internal struct DivOp : IBinaryOperator<float>
{
    public static bool Vectorizable => true;
    public static float Invoke(float a, float b) => a / b;
    public static Vector128<float> Invoke(Vector128<float> a, Vector128<float> b) => a / b;
    public static Vector256<float> Invoke(Vector256<float> a, Vector256<float> b) => a / b;
    public static Vector512<float> Invoke(Vector512<float> a, Vector512<float> b) => a / b;
}

/// <summary>Integer division truncating toward zero (torch.div(rounding_mode='trunc')); MinValue / -1 wraps. Divisors are checked non-zero before the loop.</summary>
internal struct IntDivOp<T> : IBinaryOperator<T> where T : unmanaged, IBinaryInteger<T>
{
    public static bool Vectorizable => false;
    public static T Invoke(T a, T b) => b == -T.One ? T.Zero - a : a / b;
    public static Vector128<T> Invoke(Vector128<T> a, Vector128<T> b) => throw new NotSupportedException();
    public static Vector256<T> Invoke(Vector256<T> a, Vector256<T> b) => throw new NotSupportedException();
    public static Vector512<T> Invoke(Vector512<T> a, Vector512<T> b) => throw new NotSupportedException();
}

/// <summary>torch.maximum: NaN if either is NaN.</summary>
internal struct MaxOp<T> : IBinaryOperator<T> where T : unmanaged, INumber<T>
{
    public static bool Vectorizable => true;
    public static T Invoke(T a, T b) => T.Max(a, b);
    public static Vector128<T> Invoke(Vector128<T> a, Vector128<T> b) => Vector128.Max(a, b);
    public static Vector256<T> Invoke(Vector256<T> a, Vector256<T> b) => Vector256.Max(a, b);
    public static Vector512<T> Invoke(Vector512<T> a, Vector512<T> b) => Vector512.Max(a, b);
}

/// <summary>torch.minimum: NaN if either is NaN.</summary>
internal struct MinOp<T> : IBinaryOperator<T> where T : unmanaged, INumber<T>
{
    public static bool Vectorizable => true;
    public static T Invoke(T a, T b) => T.Min(a, b);
    public static Vector128<T> Invoke(Vector128<T> a, Vector128<T> b) => Vector128.Min(a, b);
    public static Vector256<T> Invoke(Vector256<T> a, Vector256<T> b) => Vector256.Min(a, b);
    public static Vector512<T> Invoke(Vector512<T> a, Vector512<T> b) => Vector512.Min(a, b);
}

internal struct PowOp : IBinaryOperator<float>
{
    public static bool Vectorizable => false;
    public static float Invoke(float a, float b) => MathF.Pow(a, b);
    public static Vector128<float> Invoke(Vector128<float> a, Vector128<float> b) => throw new NotSupportedException();
    public static Vector256<float> Invoke(Vector256<float> a, Vector256<float> b) => throw new NotSupportedException();
    public static Vector512<float> Invoke(Vector512<float> a, Vector512<float> b) => throw new NotSupportedException();
}

/// <summary>Integer power by squaring, wrapping like the integer type; exponents are checked non-negative before the loop.</summary>
internal struct IntPowOp<T> : IBinaryOperator<T> where T : unmanaged, IBinaryInteger<T>
{
    public static bool Vectorizable => false;
    public static T Invoke(T a, T b)
    {
        long x = long.CreateTruncating(a), e = long.CreateTruncating(b), r = 1;
        while (e > 0)
        {
            if ((e & 1) != 0) r = unchecked(r * x);
            x = unchecked(x * x);
            e >>= 1;
        }
        return T.CreateTruncating(r);
    }
    public static Vector128<T> Invoke(Vector128<T> a, Vector128<T> b) => throw new NotSupportedException();
    public static Vector256<T> Invoke(Vector256<T> a, Vector256<T> b) => throw new NotSupportedException();
    public static Vector512<T> Invoke(Vector512<T> a, Vector512<T> b) => throw new NotSupportedException();
}

/// <summary>A comparison producing bool; NaN compares unequal to everything (ne is true).</summary>
internal interface ICompareOperator
{
    static abstract bool Invoke<T>(T a, T b) where T : INumber<T>;
}

internal struct EqOp : ICompareOperator { public static bool Invoke<T>(T a, T b) where T : INumber<T> => a == b; }
internal struct NeOp : ICompareOperator { public static bool Invoke<T>(T a, T b) where T : INumber<T> => a != b; }
internal struct LtOp : ICompareOperator { public static bool Invoke<T>(T a, T b) where T : INumber<T> => a < b; }
internal struct LeOp : ICompareOperator { public static bool Invoke<T>(T a, T b) where T : INumber<T> => a <= b; }
internal struct GtOp : ICompareOperator { public static bool Invoke<T>(T a, T b) where T : INumber<T> => a > b; }
internal struct GeOp : ICompareOperator { public static bool Invoke<T>(T a, T b) where T : INumber<T> => a >= b; }

/// <summary>Running max for pooling: the new value wins if larger or NaN (torch's max_pool2d rule).</summary>
internal struct MaxNaNOp : IBinaryOperator<float>
{
    public static bool Vectorizable => true;
    public static float Invoke(float acc, float v) => v > acc || float.IsNaN(v) ? v : acc;
    public static Vector128<float> Invoke(Vector128<float> acc, Vector128<float> v) => Vector128.ConditionalSelect(Vector128.GreaterThan(v, acc) | ~Vector128.Equals(v, v), v, acc);
    public static Vector256<float> Invoke(Vector256<float> acc, Vector256<float> v) => Vector256.ConditionalSelect(Vector256.GreaterThan(v, acc) | ~Vector256.Equals(v, v), v, acc);
    public static Vector512<float> Invoke(Vector512<float> acc, Vector512<float> v) => Vector512.ConditionalSelect(Vector512.GreaterThan(v, acc) | ~Vector512.Equals(v, v), v, acc);
}
