using Osprey.Core;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Tests.Support;

namespace Osprey.Tests.Core;

public class IndexingOpTests
{
    public static TheoryData<string> Cases => Golden.Names("indexing");

    /// <summary>gather on every axis (int64 and int32 indices, index smaller than the input) and index_select.</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void Matches_torch(string name)
    {
        var c = Golden.Get("indexing", name);
        using var x = c.Input(0);
        using var index = c.Input(1);
        using var e = c.Output(0);
        using var y = c.Str("op") == "Gather" ? Op.Gather(x, c.Int("axis"), index) : Op.IndexSelect(x, c.Int("axis"), index);
        Golden.AssertMatches(e, y, 0, 0, name);
    }

    [Fact]
    public void Gather_reads_strided_inputs()
    {
        using var x = Tensor.FromArray(Enumerable.Range(0, 12).Select(v => (float)v).ToArray(), 3, 4);
        using var xt = x.Transpose(0, 1); // [4, 3]: xt[i, j] = 4j + i
        using var idx = Tensor.FromArray(new long[] { 2, 0, 1, 1 }, 4, 1);
        using var y = Op.Gather(xt, 1, idx);
        Assert.Equal(new float[] { 8, 1, 6, 7 }, y.ToArray<float>());
    }

    [Fact]
    public void Out_of_range_index_names_the_op_and_value()
    {
        using var x = Tensor.Zeros(new Shape(2, 3));
        using var idx = Tensor.FromArray(new[] { 0, 3 }, 2);
        var e = Assert.Throws<OpArgumentException>(() => Op.IndexSelect(x, 1, idx));
        Assert.Contains("index_select", e.Message, StringComparison.Ordinal);
        Assert.Contains("3", e.Message, StringComparison.Ordinal);
        using var gi = Tensor.FromArray(new long[] { -1, 0, 0, 0, 0, 0 }, 2, 3);
        Assert.Throws<OpArgumentException>(() => Op.Gather(x, 0, gi));
    }
}
