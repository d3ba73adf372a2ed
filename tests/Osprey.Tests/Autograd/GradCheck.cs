using System.Runtime.InteropServices;
using Osprey.Core.Autograd;
using Osprey.Core.Tensors;
using Osprey.Tests.Support;

namespace Osprey.Tests.Autograd;

/// <summary>
/// Gradient checks against central finite differences. The tensor core has no float64 dtype, so the
/// function runs in float32 and everything around it is float64: the loss L = sum(f(x) * r) (r a fixed
/// random weighting, which checks every output's gradient at once) is accumulated in double, and the
/// quotient (L(x + h) - L(x - h)) / h uses the float32-representable step actually taken. With h about 2e-2
/// the float32 noise stays near 1e-5 and the truncation error near 1e-4 for the smooth inputs used here;
/// inputs keep away from kinks (relu at 0, pooling ties, clamp bounds) by more than h.
/// </summary>
public static class GradCheck
{
    public static void Check(string what, Func<Tensor[], Tensor> f, Tensor[] inputs, double atol = 3e-3, double rtol = 2e-2,
        double eps = 1e-2, int seed = 7)
    {
        var parameters = inputs.Select((t, i) => new Parameter(t, $"input{i}", ownsValue: false)).ToArray();
        float[] r;
        using (var tape = new GradTape(parameters))
        {
            using var y = f(inputs);
            r = Rand.Floats(seed, y.Numel, -1f, 1f);
            using var gy = Tensor.FromSpan<float>(r, y.Shape);
            tape.Backward(y, gy);
        }
        for (int i = 0; i < inputs.Length; i++)
        {
            var x = inputs[i];
            if (x.DType != DType.Float32) continue;
            var analytic = parameters[i].Grad?.ToArray<float>() ?? new float[x.Numel];
            parameters[i].Dispose();
            var data = x.ToArray<float>();
            var numeric = new float[data.Length];
            for (int j = 0; j < data.Length; j++)
            {
                float up = data[j] + (float)eps, down = data[j] - (float)eps;
                Set(x, j, up);
                double lUp = Loss(f, inputs, r);
                Set(x, j, down);
                double lDown = Loss(f, inputs, r);
                Set(x, j, data[j]);
                numeric[j] = (float)((lUp - lDown) / ((double)up - down));
            }
            Close.Assert(numeric, analytic, atol, rtol, $"{what}: d/d input {i} {x.Shape} (numeric vs autograd)");
        }
    }

    private static double Loss(Func<Tensor[], Tensor> f, Tensor[] inputs, float[] r)
    {
        using var y = f(inputs);
        var v = y.ToArray<float>();
        double s = 0;
        for (int i = 0; i < v.Length; i++) s += (double)v[i] * r[i];
        return s;
    }

    private static void Set(Tensor x, int j, float value)
    {
        if (!x.IsContiguous()) throw new ArgumentException("grad check inputs must be contiguous");
        ReadOnlySpan<float> one = [value];
        x.Backend.Upload(MemoryMarshal.AsBytes(one), x.Storage, (x.Offset + j) * 4);
    }

    /// <summary>Uniform values in [lo, hi) whose magnitude is at least <paramref name="gap"/> (away from kinks at 0).</summary>
    public static Tensor AwayFromZero(int seed, Shape shape, float lo = -2f, float hi = 2f, float gap = 0.1f)
    {
        var v = Rand.Floats(seed, shape.Numel, lo, hi);
        for (int i = 0; i < v.Length; i++)
            if (MathF.Abs(v[i]) < gap) v[i] = v[i] < 0 ? -gap - 0.05f : gap + 0.05f;
        return Tensor.FromSpan<float>(v, shape);
    }

    /// <summary>Distinct values (a shuffled ramp with spacing &gt; 2h) so max-pooling and max-reductions have no near-ties.</summary>
    public static Tensor Distinct(int seed, Shape shape, float spacing = 0.05f)
    {
        int n = (int)shape.Numel;
        var v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (i - n / 2) * spacing;
        new Random(seed).Shuffle(v);
        return Tensor.FromSpan<float>(v, shape);
    }
}
