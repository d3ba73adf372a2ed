using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Osprey.Core.Cpu;

// One struct per UnaryKind; the parameters a and b are UnaryOp.A and UnaryOp.B.
// Every form computes in float32 and follows torch's formula for the op.

internal struct IdentityOp : IUnaryOperator
{
    public static bool Vectorizable => true;
    public static float Invoke(float x, float a, float b) => x;
    public static Vector128<float> Invoke(Vector128<float> x, float a, float b) => x;
    public static Vector256<float> Invoke(Vector256<float> x, float a, float b) => x;
    public static Vector512<float> Invoke(Vector512<float> x, float a, float b) => x;
}

internal struct NegOp : IUnaryOperator
{
    public static bool Vectorizable => true;
    public static float Invoke(float x, float a, float b) => -x;
    public static Vector128<float> Invoke(Vector128<float> x, float a, float b) => -x;
    public static Vector256<float> Invoke(Vector256<float> x, float a, float b) => -x;
    public static Vector512<float> Invoke(Vector512<float> x, float a, float b) => -x;
}

internal struct AbsOp : IUnaryOperator
{
    public static bool Vectorizable => true;
    public static float Invoke(float x, float a, float b) => MathF.Abs(x);
    public static Vector128<float> Invoke(Vector128<float> x, float a, float b) => Vector128.Abs(x);
    public static Vector256<float> Invoke(Vector256<float> x, float a, float b) => Vector256.Abs(x);
    public static Vector512<float> Invoke(Vector512<float> x, float a, float b) => Vector512.Abs(x);
}

internal struct SqrtOp : IUnaryOperator
{
    public static bool Vectorizable => true;
    public static float Invoke(float x, float a, float b) => MathF.Sqrt(x);
    public static Vector128<float> Invoke(Vector128<float> x, float a, float b) => Vector128.Sqrt(x);
    public static Vector256<float> Invoke(Vector256<float> x, float a, float b) => Vector256.Sqrt(x);
    public static Vector512<float> Invoke(Vector512<float> x, float a, float b) => Vector512.Sqrt(x);
}

internal struct ExpOp : IUnaryOperator
{
    public static bool Vectorizable => true;
    public static float Invoke(float x, float a, float b) => MathF.Exp(x);
    public static Vector128<float> Invoke(Vector128<float> x, float a, float b) => SimdMath.Exp(x);
    public static Vector256<float> Invoke(Vector256<float> x, float a, float b) => SimdMath.Exp(x);
    public static Vector512<float> Invoke(Vector512<float> x, float a, float b) => SimdMath.Exp(x);
}

internal struct LogOp : IUnaryOperator
{
    public static bool Vectorizable => true;
    public static float Invoke(float x, float a, float b) => MathF.Log(x);
    public static Vector128<float> Invoke(Vector128<float> x, float a, float b) => Vector128.Log(x);
    public static Vector256<float> Invoke(Vector256<float> x, float a, float b) => Vector256.Log(x);
    public static Vector512<float> Invoke(Vector512<float> x, float a, float b) => Vector512.Log(x);
}

/// <summary>max(x, 0) keeping NaN, as torch.relu.</summary>
internal struct ReluOp : IUnaryOperator
{
    public static bool Vectorizable => true;
    public static float Invoke(float x, float a, float b) => x < 0 ? 0 : x;
    public static Vector128<float> Invoke(Vector128<float> x, float a, float b) => Vector128.ConditionalSelect(Vector128.LessThan(x, Vector128<float>.Zero), Vector128<float>.Zero, x);
    public static Vector256<float> Invoke(Vector256<float> x, float a, float b) => Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256<float>.Zero), Vector256<float>.Zero, x);
    public static Vector512<float> Invoke(Vector512<float> x, float a, float b) => Vector512.ConditionalSelect(Vector512.LessThan(x, Vector512<float>.Zero), Vector512<float>.Zero, x);
}

internal struct Relu6Op : IUnaryOperator
{
    public static bool Vectorizable => true;
    public static float Invoke(float x, float a, float b) => ClampOp.Invoke(x, 0, 6);
    public static Vector128<float> Invoke(Vector128<float> x, float a, float b) => ClampOp.Invoke(x, 0, 6);
    public static Vector256<float> Invoke(Vector256<float> x, float a, float b) => ClampOp.Invoke(x, 0, 6);
    public static Vector512<float> Invoke(Vector512<float> x, float a, float b) => ClampOp.Invoke(x, 0, 6);
}

/// <summary>clamp(x, a, b); NaN stays NaN, as torch.clamp.</summary>
internal struct ClampOp : IUnaryOperator
{
    public static bool Vectorizable => true;
    public static float Invoke(float x, float a, float b) => x < a ? a : x > b ? b : x;
    public static Vector128<float> Invoke(Vector128<float> x, float a, float b)
    {
        var lo = Vector128.Create(a);
        var hi = Vector128.Create(b);
        x = Vector128.ConditionalSelect(Vector128.LessThan(x, lo), lo, x);
        return Vector128.ConditionalSelect(Vector128.GreaterThan(x, hi), hi, x);
    }
    public static Vector256<float> Invoke(Vector256<float> x, float a, float b)
    {
        var lo = Vector256.Create(a);
        var hi = Vector256.Create(b);
        x = Vector256.ConditionalSelect(Vector256.LessThan(x, lo), lo, x);
        return Vector256.ConditionalSelect(Vector256.GreaterThan(x, hi), hi, x);
    }
    public static Vector512<float> Invoke(Vector512<float> x, float a, float b)
    {
        var lo = Vector512.Create(a);
        var hi = Vector512.Create(b);
        x = Vector512.ConditionalSelect(Vector512.LessThan(x, lo), lo, x);
        return Vector512.ConditionalSelect(Vector512.GreaterThan(x, hi), hi, x);
    }
}

internal struct LeakyReluOp : IUnaryOperator
{
    public static bool Vectorizable => true;
    public static float Invoke(float x, float a, float b) => x > 0 ? x : x * a;
    public static Vector128<float> Invoke(Vector128<float> x, float a, float b) => Vector128.ConditionalSelect(Vector128.GreaterThan(x, Vector128<float>.Zero), x, x * a);
    public static Vector256<float> Invoke(Vector256<float> x, float a, float b) => Vector256.ConditionalSelect(Vector256.GreaterThan(x, Vector256<float>.Zero), x, x * a);
    public static Vector512<float> Invoke(Vector512<float> x, float a, float b) => Vector512.ConditionalSelect(Vector512.GreaterThan(x, Vector512<float>.Zero), x, x * a);
}

/// <summary>1 / (1 + exp(-x)).</summary>
internal struct SigmoidOp : IUnaryOperator
{
    public static bool Vectorizable => true;
    public static float Invoke(float x, float a, float b) => 1f / (1f + MathF.Exp(-x));
    public static Vector128<float> Invoke(Vector128<float> x, float a, float b) => Vector128<float>.One / (Vector128<float>.One + SimdMath.Exp(-x));
    public static Vector256<float> Invoke(Vector256<float> x, float a, float b) => Vector256<float>.One / (Vector256<float>.One + SimdMath.Exp(-x));
    public static Vector512<float> Invoke(Vector512<float> x, float a, float b) => Vector512<float>.One / (Vector512<float>.One + SimdMath.Exp(-x));
}

internal struct SiluOp : IUnaryOperator
{
    public static bool Vectorizable => true;
    public static float Invoke(float x, float a, float b) => x / (1f + MathF.Exp(-x));
    public static Vector128<float> Invoke(Vector128<float> x, float a, float b) => x / (Vector128<float>.One + SimdMath.Exp(-x));
    public static Vector256<float> Invoke(Vector256<float> x, float a, float b) => x / (Vector256<float>.One + SimdMath.Exp(-x));
    public static Vector512<float> Invoke(Vector512<float> x, float a, float b) => x / (Vector512<float>.One + SimdMath.Exp(-x));
}

/// <summary>clamp(x/6 + 1/2, 0, 1) written as torch.nn.Hardsigmoid: min(max(x + 3, 0), 6) / 6.</summary>
internal struct HardSigmoidOp : IUnaryOperator
{
    public static bool Vectorizable => true;
    public static float Invoke(float x, float a, float b) => ClampOp.Invoke(x + 3f, 0, 6) / 6f;
    public static Vector128<float> Invoke(Vector128<float> x, float a, float b) => ClampOp.Invoke(x + Vector128.Create(3f), 0, 6) / Vector128.Create(6f);
    public static Vector256<float> Invoke(Vector256<float> x, float a, float b) => ClampOp.Invoke(x + Vector256.Create(3f), 0, 6) / Vector256.Create(6f);
    public static Vector512<float> Invoke(Vector512<float> x, float a, float b) => ClampOp.Invoke(x + Vector512.Create(3f), 0, 6) / Vector512.Create(6f);
}

/// <summary>x * min(max(x + 3, 0), 6) / 6, as torch.nn.Hardswish.</summary>
internal struct HardSwishOp : IUnaryOperator
{
    public static bool Vectorizable => true;
    public static float Invoke(float x, float a, float b) => x * ClampOp.Invoke(x + 3f, 0, 6) / 6f;
    public static Vector128<float> Invoke(Vector128<float> x, float a, float b) => x * ClampOp.Invoke(x + Vector128.Create(3f), 0, 6) / Vector128.Create(6f);
    public static Vector256<float> Invoke(Vector256<float> x, float a, float b) => x * ClampOp.Invoke(x + Vector256.Create(3f), 0, 6) / Vector256.Create(6f);
    public static Vector512<float> Invoke(Vector512<float> x, float a, float b) => x * ClampOp.Invoke(x + Vector512.Create(3f), 0, 6) / Vector512.Create(6f);
}

/// <summary>
/// tanh(x) = sign(x) * (1 - e) / (1 + e) with e = exp(-2|x|), which has no cancellation for large |x|;
/// below |x| = 0.0625 an odd polynomial (Taylor to x^9) avoids the cancellation of 1 - e.
/// </summary>
internal struct TanhOp : IUnaryOperator
{
    private const float Small = 0.0625f;
    private const float C3 = -1f / 3, C5 = 2f / 15, C7 = -17f / 315, C9 = 62f / 2835;

    public static bool Vectorizable => true;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Invoke(float x, float a, float b) => MathF.Tanh(x);

    public static Vector128<float> Invoke(Vector128<float> x, float a, float b)
    {
        var ax = Vector128.Abs(x);
        var e = SimdMath.Exp(ax * Vector128.Create(-2f));
        var big = (Vector128<float>.One - e) / (Vector128<float>.One + e);
        var x2 = x * x;
        var poly = ax + ax * x2 * (Vector128.Create(C3) + x2 * (Vector128.Create(C5) + x2 * (Vector128.Create(C7) + x2 * Vector128.Create(C9))));
        var r = Vector128.ConditionalSelect(Vector128.LessThan(ax, Vector128.Create(Small)), poly, big);
        return Vector128.CopySign(r, x);
    }

    public static Vector256<float> Invoke(Vector256<float> x, float a, float b)
    {
        var ax = Vector256.Abs(x);
        var e = SimdMath.Exp(ax * Vector256.Create(-2f));
        var big = (Vector256<float>.One - e) / (Vector256<float>.One + e);
        var x2 = x * x;
        var poly = ax + ax * x2 * (Vector256.Create(C3) + x2 * (Vector256.Create(C5) + x2 * (Vector256.Create(C7) + x2 * Vector256.Create(C9))));
        var r = Vector256.ConditionalSelect(Vector256.LessThan(ax, Vector256.Create(Small)), poly, big);
        return Vector256.CopySign(r, x);
    }

    public static Vector512<float> Invoke(Vector512<float> x, float a, float b)
    {
        var ax = Vector512.Abs(x);
        var e = SimdMath.Exp(ax * Vector512.Create(-2f));
        var big = (Vector512<float>.One - e) / (Vector512<float>.One + e);
        var x2 = x * x;
        var poly = ax + ax * x2 * (Vector512.Create(C3) + x2 * (Vector512.Create(C5) + x2 * (Vector512.Create(C7) + x2 * Vector512.Create(C9))));
        var r = Vector512.ConditionalSelect(Vector512.LessThan(ax, Vector512.Create(Small)), poly, big);
        return Vector512.CopySign(r, x);
    }
}

/// <summary>
/// Exact GELU, 0.5 x (1 + erf(x / sqrt 2)). erf uses Abramowitz and Stegun 7.1.26
/// (absolute error below 1.5e-7), the same polynomial at every width.
/// </summary>
internal struct GeluOp : IUnaryOperator
{
    private const float InvSqrt2 = 0.70710678118654752f;
    private const float P = 0.3275911f, A1 = 0.254829592f, A2 = -0.284496736f, A3 = 1.421413741f, A4 = -1.453152027f, A5 = 1.061405429f;

    public static bool Vectorizable => true;

    public static float Invoke(float x, float a, float b)
    {
        float z = MathF.Abs(x * InvSqrt2);
        float t = 1f / (1f + P * z);
        float y = 1f - (((((A5 * t + A4) * t) + A3) * t + A2) * t + A1) * t * MathF.Exp(-z * z);
        float erf = x < 0 ? -y : y;
        return 0.5f * x * (1f + erf);
    }

    public static Vector128<float> Invoke(Vector128<float> x, float a, float b)
    {
        var z = Vector128.Abs(x * Vector128.Create(InvSqrt2));
        var t = Vector128<float>.One / (Vector128<float>.One + Vector128.Create(P) * z);
        var poly = ((((Vector128.Create(A5) * t + Vector128.Create(A4)) * t + Vector128.Create(A3)) * t + Vector128.Create(A2)) * t + Vector128.Create(A1)) * t;
        var y = Vector128<float>.One - poly * SimdMath.Exp(-(z * z));
        return Vector128.Create(0.5f) * x * (Vector128<float>.One + Vector128.CopySign(y, x));
    }

    public static Vector256<float> Invoke(Vector256<float> x, float a, float b)
    {
        var z = Vector256.Abs(x * Vector256.Create(InvSqrt2));
        var t = Vector256<float>.One / (Vector256<float>.One + Vector256.Create(P) * z);
        var poly = ((((Vector256.Create(A5) * t + Vector256.Create(A4)) * t + Vector256.Create(A3)) * t + Vector256.Create(A2)) * t + Vector256.Create(A1)) * t;
        var y = Vector256<float>.One - poly * SimdMath.Exp(-(z * z));
        return Vector256.Create(0.5f) * x * (Vector256<float>.One + Vector256.CopySign(y, x));
    }

    public static Vector512<float> Invoke(Vector512<float> x, float a, float b)
    {
        var z = Vector512.Abs(x * Vector512.Create(InvSqrt2));
        var t = Vector512<float>.One / (Vector512<float>.One + Vector512.Create(P) * z);
        var poly = ((((Vector512.Create(A5) * t + Vector512.Create(A4)) * t + Vector512.Create(A3)) * t + Vector512.Create(A2)) * t + Vector512.Create(A1)) * t;
        var y = Vector512<float>.One - poly * SimdMath.Exp(-(z * z));
        return Vector512.Create(0.5f) * x * (Vector512<float>.One + Vector512.CopySign(y, x));
    }
}
