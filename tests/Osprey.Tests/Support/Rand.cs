using Osprey.Core.Tensors;

namespace Osprey.Tests.Support;

/// <summary>Seeded random test inputs (never zeros): uniform in [lo, hi).</summary>
public static class Rand
{
    public static float[] Floats(int seed, long count, float lo = -1f, float hi = 1f)
    {
        var rng = new Random(seed);
        var a = new float[count];
        for (long i = 0; i < count; i++) a[i] = lo + (float)rng.NextDouble() * (hi - lo);
        return a;
    }

    public static Tensor Tensor(int seed, Shape shape, float lo = -1f, float hi = 1f, Device? device = null) =>
        Osprey.Core.Tensors.Tensor.FromSpan<float>(Floats(seed, shape.Numel, lo, hi), shape, device);
}

/// <summary>Element-wise comparison whose failure names the first bad index and the values.</summary>
public static class Close
{
    /// <summary>|actual - expected| &lt;= atol + rtol * |expected| everywhere; NaN only where expected is NaN.</summary>
    public static void Assert(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double atol = 1e-5, double rtol = 1e-5, string what = "")
    {
        if (expected.Length != actual.Length)
            throw new Xunit.Sdk.XunitException($"{what}: length {actual.Length}, expected {expected.Length}");
        int bad = 0, first = -1;
        double worst = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double e = expected[i], a = actual[i];
            bool ok = double.IsNaN(e) ? double.IsNaN(a)
                : double.IsInfinity(e) ? e == a
                : !double.IsNaN(a) && Math.Abs(a - e) <= atol + rtol * Math.Abs(e);
            if (ok) continue;
            bad++;
            if (first < 0) first = i;
            if (!double.IsNaN(a)) worst = Math.Max(worst, Math.Abs(a - e));
        }
        if (bad > 0)
            throw new Xunit.Sdk.XunitException(
                $"{what}: {bad} of {expected.Length} elements differ; first at index {first}: got {actual[first]}, expected {expected[first]} " +
                $"(atol {atol}, rtol {rtol}, max abs error {worst})");
    }

    public static void Assert(Tensor expected, Tensor actual, double atol = 1e-5, double rtol = 1e-5, string what = "")
    {
        if (expected.Shape != actual.Shape)
            throw new Xunit.Sdk.XunitException($"{what}: shape {actual.Shape}, expected {expected.Shape}");
        using var e = Osprey.Core.Ops.Op.Cast(expected, DType.Float32);
        using var a = Osprey.Core.Ops.Op.Cast(actual, DType.Float32);
        Assert(e.ToArray<float>(), a.ToArray<float>(), atol, rtol, what);
    }
}
