using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Osprey.Core.Backends;

namespace Osprey.Core.Cpu;

/// <summary>
/// The float32 definitions of every <see cref="UnaryKind"/>, as PyTorch computes them: one scalar
/// <see cref="Apply(UnaryOp, float)"/> and an in-place span form that vectorises the piecewise-linear
/// kinds (used by fused epilogues; other element-wise kernels may share it).
/// </summary>
public static class Activation
{
    public static float Apply(UnaryOp op, float x) => op.Kind switch
    {
        UnaryKind.Identity => x,
        UnaryKind.Neg => -x,
        UnaryKind.Abs => MathF.Abs(x),
        UnaryKind.Sqrt => MathF.Sqrt(x),
        UnaryKind.Exp => MathF.Exp(x),
        UnaryKind.Log => MathF.Log(x),
        UnaryKind.Relu => x > 0 ? x : (float.IsNaN(x) ? x : 0f),
        UnaryKind.Relu6 => float.IsNaN(x) ? x : Math.Clamp(x, 0f, 6f),
        UnaryKind.LeakyRelu => x > 0 ? x : x * op.A,
        UnaryKind.Silu => x / (1f + MathF.Exp(-x)),
        UnaryKind.Sigmoid => 1f / (1f + MathF.Exp(-x)),
        UnaryKind.HardSigmoid => float.IsNaN(x) ? x : Math.Clamp(x / 6f + 0.5f, 0f, 1f),
        UnaryKind.HardSwish => float.IsNaN(x) ? x : x * Math.Clamp(x / 6f + 0.5f, 0f, 1f),
        UnaryKind.Tanh => MathF.Tanh(x),
        UnaryKind.Gelu => (float)(0.5 * x * (1.0 + Erf(x / Math.Sqrt(2.0)))),
        UnaryKind.Clamp => float.IsNaN(x) ? x : MathF.Min(MathF.Max(x, op.A), op.B),
        _ => ThrowUnknown(op.Kind),
    };

    /// <summary>xs[i] = op(xs[i]).</summary>
    public static void Apply(UnaryOp op, Span<float> xs)
    {
        switch (op.Kind)
        {
            case UnaryKind.Identity: return;
            case UnaryKind.Relu: ClampVec(xs, 0f, float.PositiveInfinity); return;
            case UnaryKind.Relu6: ClampVec(xs, 0f, 6f); return;
            case UnaryKind.Clamp: ClampVec(xs, op.A, op.B); return;
            case UnaryKind.LeakyRelu: LeakyVec(xs, op.A); return;
            default:
                for (int i = 0; i < xs.Length; i++) xs[i] = Apply(op, xs[i]);
                return;
        }
    }

    // min(max(x, lo), hi) with NaN kept (max/min on vectors would drop it, PyTorch keeps it)
    private static void ClampVec(Span<float> xs, float lo, float hi)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && xs.Length >= Vector<float>.Count)
        {
            var vs = MemoryMarshal.Cast<float, Vector<float>>(xs);
            var vlo = new Vector<float>(lo);
            var vhi = new Vector<float>(hi);
            for (int j = 0; j < vs.Length; j++)
            {
                var v = vs[j];
                var c = Vector.Min(Vector.Max(v, vlo), vhi);
                vs[j] = Vector.ConditionalSelect(Vector.Equals(v, v), c, v);
            }
            i = vs.Length * Vector<float>.Count;
        }
        for (; i < xs.Length; i++)
        {
            float x = xs[i];
            if (!float.IsNaN(x)) xs[i] = MathF.Min(MathF.Max(x, lo), hi);
        }
    }

    private static void LeakyVec(Span<float> xs, float slope)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && xs.Length >= Vector<float>.Count)
        {
            var vs = MemoryMarshal.Cast<float, Vector<float>>(xs);
            var vslope = new Vector<float>(slope);
            for (int j = 0; j < vs.Length; j++)
            {
                var v = vs[j];
                vs[j] = Vector.ConditionalSelect(Vector.GreaterThan(v, Vector<float>.Zero), v, v * vslope);
            }
            i = vs.Length * Vector<float>.Count;
        }
        for (; i < xs.Length; i++) if (!(xs[i] > 0)) xs[i] *= slope;
    }

    /// <summary>erf(x) to about 1e-13 (Taylor series below 2.5, continued fraction for erfc above), for the exact GELU.</summary>
    public static double Erf(double x)
    {
        double ax = Math.Abs(x);
        if (ax < 2.5)
        {
            // Taylor series: terms peak near e^(x^2) ~ 500, so about 13 digits survive
            double x2 = x * x, term = x, sum = x;
            for (int n = 1; n < 100; n++)
            {
                term *= -x2 / n;
                double add = term / (2 * n + 1);
                sum += add;
                if (Math.Abs(add) < 1e-17 * Math.Abs(sum)) break;
            }
            return sum * 1.1283791670955126;
        }
        if (ax > 6) return Math.Sign(x);
        // continued fraction for erfc, Lentz's method
        double erfc = ErfcContinuedFraction(ax);
        return x > 0 ? 1 - erfc : erfc - 1;
    }

    private static double ErfcContinuedFraction(double x)
    {
        // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + 1/2/(x + 1/(x + 3/2/(x + 2/(x + ...)))))
        const double tiny = 1e-300;
        double f = x, c = x, d = 0;
        for (int n = 1; n < 200; n++)
        {
            double an = n * 0.5;
            d = x + an * d;
            d = Math.Abs(d) < tiny ? tiny : d;
            c = x + an / c;
            c = Math.Abs(c) < tiny ? tiny : c;
            d = 1 / d;
            double delta = c * d;
            f *= delta;
            if (Math.Abs(delta - 1) < 1e-16) break;
        }
        return Math.Exp(-x * x) / (f * 1.7724538509055159);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static float ThrowUnknown(UnaryKind k) => throw new ArgumentOutOfRangeException(nameof(k), k, "unknown unary kind");
}
