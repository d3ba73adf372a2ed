using Osprey.Core;
using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Tests.Support;

namespace Osprey.Tests.Core;

public class BinaryOpTests
{
    public static TheoryData<string> Cases => Golden.Names("binary");

    /// <summary>add..pow and the comparisons for float32/16, bfloat16, int32/64, uint8, int8 (eq/ne for bool) and where, with broadcasting.</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void Matches_torch(string name)
    {
        var c = Golden.Get("binary", name);
        string op = c.Str("op");
        using var e = c.Output(0);
        if (op == "Where")
        {
            using var cond = c.Input(0);
            using var a = c.Input(1);
            using var b = c.Input(2);
            using var y = Op.Where(cond, a, b);
            Golden.AssertMatches(e, y, 0, 0, name);
            return;
        }
        using var xa = c.Input(0);
        using var xb = c.Input(1);
        using var r = Op.Binary(Enum.Parse<BinaryOp>(op), xa, xb);
        var (atol, rtol) = Golden.Tolerance(xa.DType, 1e-6, op == "Pow" ? 2e-6 : 1e-6);
        Golden.AssertMatches(e, r, atol, rtol, name);
    }

    [Fact]
    public void Integer_division_truncates_and_wraps()
    {
        using var a = Tensor.FromArray(new[] { 7, -7, 7, -7, int.MinValue }, 5);
        using var b = Tensor.FromArray(new[] { 2, 2, -2, -2, -1 }, 5);
        using var q = Op.Div(a, b);
        Assert.Equal(new[] { 3, -3, -3, 3, int.MinValue }, q.ToArray<int>());
    }

    [Fact]
    public void Integer_division_by_zero_is_an_op_error()
    {
        using var a = Tensor.FromArray(new long[] { 1, 2, 3 }, 3);
        using var b = Tensor.FromArray(new long[] { 1, 0, 3 }, 3);
        var ex = Assert.Throws<OpArgumentException>(() => Op.Div(a, b));
        Assert.Contains("div", ex.Message, StringComparison.Ordinal);
        Assert.Contains("[3]", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Strided_operands_on_both_sides_match_dense_ones()
    {
        using var a = Rand.Tensor(1, new Shape(13, 11));
        using var b = Rand.Tensor(2, new Shape(11, 13));
        using var at = a.Transpose(0, 1);
        using var s = at.Slice(1, 1, 13, 2);
        using var bs = b.Slice(1, 0, 12, 2);
        using var y = Op.Sub(s, bs);
        using var sd = Op.Contiguous(s);
        using var bd = Op.Contiguous(bs);
        using var yd = Op.Sub(sd, bd);
        Close.Assert(yd, y, 0, 0, "strided sub");
        float[] sv = sd.ToArray<float>(), bv = bd.ToArray<float>(), yv = y.ToArray<float>();
        for (int i = 0; i < yv.Length; i++) Assert.Equal(sv[i] - bv[i], yv[i]);
    }
}
