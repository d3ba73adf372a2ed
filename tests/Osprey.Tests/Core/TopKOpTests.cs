using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Tests.Support;

namespace Osprey.Tests.Core;

public class TopKOpTests
{
    public static TheoryData<string> Cases => Golden.Names("topk");

    /// <summary>
    /// Values must equal torch's exactly. torch 1.13 orders tied values arbitrarily (e.g. indices 6, 0, 4, 2),
    /// Osprey lower index first: indices are checked to point at the value, be distinct, and rise within a tie.
    /// </summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void Matches_torch(string name)
    {
        var c = Golden.Get("topk", name);
        using var x = c.Input(0);
        int k = c.Int("k"), axis = c.Int("axis");
        var (v, i) = Op.TopK(x, k, axis, c.Bool("largest"));
        using (v)
        using (i)
        {
            using var ev = c.Output(0);
            Golden.AssertMatches(ev, v, 0, 0, name + " values");
            using var xf = Op.Cast(x, DType.Float32);
            using var vf = Op.Cast(v, DType.Float32);
            float[] xs = xf.ToArray<float>(), vs = vf.ToArray<float>();
            long[] ids = i.ToArray<long>();
            int n = x.Shape[axis];
            long inner = 1;
            for (int d = axis + 1; d < x.Rank; d++) inner *= x.Shape[d];
            for (int p = 0; p < ids.Length; p++)
            {
                long o = p / inner / k, j = p % inner, t = p / inner % k;
                Assert.InRange(ids[p], 0, n - 1);
                float at = xs[(o * n + ids[p]) * inner + j];
                Assert.True(at.Equals(vs[p]), $"{name}: index {ids[p]} at output {p} holds {at}, value says {vs[p]}");
                if (t > 0)
                {
                    long prev = ids[p - inner];
                    Assert.NotEqual(prev, ids[p]);
                    if (vs[p - inner].Equals(vs[p])) Assert.True(prev < ids[p], $"{name}: tie at output {p} not in index order ({prev} then {ids[p]})");
                }
            }
        }
    }

    [Fact]
    public void Ties_keep_lower_index_first_and_nan_is_largest()
    {
        using var x = Tensor.FromArray(new[] { 3f, 1f, 3f, 2f, 3f, 1f, float.NaN, 1f }, 8);
        var (v, i) = Op.TopK(x, 4);
        using (v)
        using (i)
        {
            Assert.Equal(new long[] { 6, 0, 2, 4 }, i.ToArray<long>());
            Assert.True(float.IsNaN(v.ToArray<float>()[0]));
        }
        var (s, si) = Op.TopK(x, 3, largest: false);
        using (s)
        using (si) Assert.Equal(new long[] { 1, 5, 7 }, si.ToArray<long>());
    }
}
