using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Tests.Support;

namespace Osprey.Tests.Core;

public class ReduceOpTests
{
    public static TheoryData<string> Cases => Golden.Names("reduce");

    /// <summary>sum/mean/max/min over axis sets (float32, float16, int32, int64), long rows, empty axes, and argmax with ties and NaN.</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void Matches_torch(string name)
    {
        var c = Golden.Get("reduce", name);
        using var x = c.Input(0);
        using var e = c.Output(0);
        string op = c.Str("op");
        using var y = op == "ArgMax"
            ? Op.ArgMax(x, c.Int("axis"), keepDims: true)
            : Op.Reduce(Enum.Parse<ReduceOp>(op), x, c.Ints("axes"), keepDims: true);
        var (atol, rtol) = Golden.Tolerance(x.DType, 1e-5, 1e-6);
        Golden.AssertMatches(e, y, atol, rtol, name);
    }

    public static TheoryData<int[]> OddShapes => new() { new[] { 1 }, new[] { 0 }, new[] { 7, 0, 3 }, new[] { 1, 1, 1 }, new[] { 2, 3, 5, 7 }, new[] { 13, 1, 17 }, new[] { 3, 259 } };

    /// <summary>Summing over all axes at once equals summing one axis after another (any order), on awkward shapes.</summary>
    [Theory]
    [MemberData(nameof(OddShapes))]
    public void Sum_over_all_axes_equals_per_axis_sums(int[] dims)
    {
        using var x = Rand.Tensor(17, new Shape(dims), 0, 1);
        using var all = Op.Sum(x);
        Tensor acc = x.Share();
        for (int d = dims.Length - 1; d >= 0; d--)
        {
            var next = Op.Sum(acc, [d]);
            acc.Dispose();
            acc = next;
        }
        using (acc)
        {
            double reference = x.ToArray<float>().Sum(v => (double)v);
            Assert.Equal(reference, all.Item<float>(), 4);
            Assert.Equal(all.Item<float>(), acc.Item<float>(), 4);
        }
    }

    [Theory]
    [MemberData(nameof(OddShapes))]
    public void Max_and_min_match_a_scalar_reference_on_every_axis(int[] dims)
    {
        using var x = Rand.Tensor(23, new Shape(dims), -5, 5);
        float[] v = x.ToArray<float>();
        for (int axis = 0; axis < dims.Length; axis++)
        {
            if (dims[axis] == 0) continue;
            using var mx = Op.Max(x, [axis], keepDims: true);
            using var mn = Op.Min(x, [axis], keepDims: true);
            long inner = 1;
            for (int d = axis + 1; d < dims.Length; d++) inner *= dims[d];
            float[] a = mx.ToArray<float>(), b = mn.ToArray<float>();
            for (int o = 0; o < a.Length; o++)
            {
                long outer = o / inner, j = o % inner;
                float hi = float.NegativeInfinity, lo = float.PositiveInfinity;
                for (int i = 0; i < dims[axis]; i++)
                {
                    float t = v[(outer * dims[axis] + i) * inner + j];
                    hi = Math.Max(hi, t);
                    lo = Math.Min(lo, t);
                }
                Assert.Equal(hi, a[o]);
                Assert.Equal(lo, b[o]);
            }
        }
    }

    [Fact]
    public void Integer_sums_wrap_like_int64_narrowed()
    {
        using var x = Tensor.FromArray(new[] { int.MaxValue, 1, 1 }, 3);
        using var s = Op.Sum(x);
        Assert.Equal(unchecked(int.MaxValue + 2), s.Item<int>());
    }

    [Fact]
    public void Float_sum_of_many_values_keeps_float32_accuracy()
    {
        var ones = Enumerable.Repeat(0.1f, 1 << 20).ToArray();
        using var x = Tensor.FromArray(ones, ones.Length);
        using var s = Op.Sum(x);
        Assert.Equal(0.1f * (double)(1 << 20), s.Item<float>(), 1);
    }
}
