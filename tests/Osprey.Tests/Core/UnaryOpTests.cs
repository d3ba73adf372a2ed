using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Tests.Support;

namespace Osprey.Tests.Core;

public class UnaryOpTests
{
    public static TheoryData<string> Cases => Golden.Names("unary");

    /// <summary>Every UnaryKind in float32 (dense and transposed), float16 and bfloat16 against torch (computed in float32, rounded once).</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void Matches_torch(string name)
    {
        var c = Golden.Get("unary", name);
        using var x0 = c.Input(0);
        using var x = c.Bool("transpose") ? x0.Transpose(0, 1) : x0.Share();
        var op = new UnaryOp(Enum.Parse<UnaryKind>(c.Str("kind")), c.Float("a"), c.Float("b"));
        using var y = Op.Unary(op, x);
        using var e = c.Output(0);
        var (atol, rtol) = Golden.Tolerance(x.DType, 1e-6, 1e-5);
        Golden.AssertMatches(e, y, atol, rtol, name);
    }

    [Fact]
    public void Every_kind_has_a_fixture()
    {
        var names = Golden.CaseNames("unary");
        foreach (var k in Enum.GetValues<UnaryKind>())
            foreach (var dt in new[] { "float32", "float16", "bfloat16" })
                Assert.Contains($"{k}_{dt}", names);
    }

    [Fact]
    public void Special_values_follow_torch()
    {
        using var x = Tensor.FromArray(new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity, -0f, 0f }, 5);
        using (var r = Op.Relu(x)) Assert.Equal(new[] { float.NaN, float.PositiveInfinity, 0f, -0f, 0f }, r.ToArray<float>());
        using (var s = Op.Sigmoid(x)) Assert.Equal(new[] { float.NaN, 1f, 0f, 0.5f, 0.5f }, s.ToArray<float>());
        using (var t = Op.Tanh(x)) Assert.Equal(new[] { float.NaN, 1f, -1f, -0f, 0f }, t.ToArray<float>());
        using (var c = Op.Clamp(x, -1, 1)) Assert.Equal(new[] { float.NaN, 1f, -1f, -0f, 0f }, c.ToArray<float>());
    }

    [Fact]
    public void Vector_exp_handles_overflow_subnormals_and_nan()
    {
        // 16 values so the AVX-512 path (not the scalar tail) computes them
        var v = new[] { 89f, 88.5f, 88f, -87f, -90f, -100f, -103f, -104f, -200f, float.PositiveInfinity, float.NegativeInfinity, float.NaN, 0f, 1f, -1f, 20f };
        using var x = Tensor.FromArray(v, v.Length);
        using var y = Op.Exp(x);
        var expected = v.Select(t => (float)Math.Exp(t)).ToArray();
        Close.Assert(expected, y.ToArray<float>(), 1e-45, 2e-6, "exp");
    }

    [Fact]
    public void Channels_last_input_gives_channels_last_output_with_the_same_values()
    {
        using var x = Rand.Tensor(5, new Shape(2, 3, 5, 7), -4, 4);
        using var cl = Op.Contiguous(x, MemoryFormat.ChannelsLast);
        using var a = Op.Gelu(x);
        using var b = Op.Gelu(cl);
        Assert.True(b.IsContiguous(MemoryFormat.ChannelsLast));
        Close.Assert(a, b, 0, 0, "gelu nhwc vs nchw");
    }
}
