using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Tests.Support;

namespace Osprey.Tests.Autograd;

/// <summary>Finite-difference gradient checks of the element-wise, reduction and softmax ops (odd shapes, every broadcasting case).</summary>
public class ElementwiseGradTests
{
    public static TheoryData<UnaryKind> UnaryKinds()
    {
        var d = new TheoryData<UnaryKind>();
        foreach (var k in Enum.GetValues<UnaryKind>()) d.Add(k);
        return d;
    }

    /// <summary>Inputs in each kind's domain, kept more than the step away from its kinks.</summary>
    private static Tensor UnaryInput(UnaryKind k, Shape shape)
    {
        (float lo, float hi, float[] kinks) = k switch
        {
            UnaryKind.Log or UnaryKind.Sqrt => (0.3f, 2f, Array.Empty<float>()),
            UnaryKind.Relu6 => (-2f, 8f, [0f, 6f]),
            UnaryKind.HardSigmoid or UnaryKind.HardSwish => (-5f, 5f, [-3f, 3f]),
            UnaryKind.Clamp => (-2f, 2f, [-0.5f, 0.7f]),
            _ => (-2.5f, 2.5f, [0f]),
        };
        var v = Rand.Floats((int)k + 11, shape.Numel, lo, hi);
        for (int i = 0; i < v.Length; i++)
            foreach (float kink in kinks)
                if (MathF.Abs(v[i] - kink) < 0.08f) v[i] = kink + (v[i] < kink ? -0.13f : 0.13f);
        return Tensor.FromSpan<float>(v, shape);
    }

    [Theory]
    [MemberData(nameof(UnaryKinds))]
    public void Unary(UnaryKind kind)
    {
        var op = kind switch
        {
            UnaryKind.LeakyRelu => UnaryOp.LeakyRelu(0.1f),
            UnaryKind.Clamp => UnaryOp.Clamp(-0.5f, 0.7f),
            _ => new UnaryOp(kind),
        };
        using var x = UnaryInput(kind, new Shape(3, 5, 7));
        GradCheck.Check(kind.ToString(), t => Op.Unary(op, t[0]), [x]);
    }

    public static TheoryData<BinaryOp, int[], int[]> BinaryCases()
    {
        var d = new TheoryData<BinaryOp, int[], int[]>();
        int[][][] shapes =
        [
            [[3, 5], [3, 5]],          // same shape
            [[3, 1, 5], [4, 5]],       // both broadcast, ranks differ
            [[2, 3, 5], [5]],          // row vector
            [[2, 3, 5], [3, 1]],       // column
            [[1], [3, 5]],             // one element against many
            [[], [2, 3]],              // scalar
            [[2, 1, 3], [2, 5, 1]],    // outer-product style
        ];
        foreach (var op in new[] { BinaryOp.Add, BinaryOp.Sub, BinaryOp.Mul, BinaryOp.Div, BinaryOp.Max, BinaryOp.Min, BinaryOp.Pow })
            foreach (var s in shapes) d.Add(op, s[0], s[1]);
        return d;
    }

    [Theory]
    [MemberData(nameof(BinaryCases))]
    public void Binary_with_broadcasting(BinaryOp op, int[] sa, int[] sb)
    {
        bool positive = op == BinaryOp.Pow;
        using var a = positive ? Rand.Tensor(1, new Shape(sa), 0.5f, 2f) : GradCheck.Distinct(1, new Shape(sa), 0.1f);
        using var b = op switch
        {
            BinaryOp.Pow => Rand.Tensor(2, new Shape(sb), -1.5f, 1.5f),
            BinaryOp.Div => GradCheck.AwayFromZero(2, new Shape(sb), -2f, 2f, 0.5f),
            _ => Offset(GradCheck.Distinct(2, new Shape(sb), 0.1f), 0.05f),   // a on multiples of 0.1, b halfway between: no max/min near-ties
        };
        GradCheck.Check($"{op} {a.Shape} {b.Shape}", t => Op.Binary(op, t[0], t[1]), [a, b]);
    }

    private static Tensor Offset(Tensor t, float by)
    {
        using (t) return Op.Binary(BinaryOp.Add, t, by);
    }

    [Fact]
    public void Max_min_split_ties_evenly_as_torch()
    {
        using var a = Tensor.FromArray(new[] { 1f, 2f, 3f }, 3);
        using var b = Tensor.FromArray(new[] { 1f, 5f, 0f }, 3);
        var pa = new Osprey.Core.Autograd.Parameter(a, "a", ownsValue: false);
        var pb = new Osprey.Core.Autograd.Parameter(b, "b", ownsValue: false);
        using (var tape = new Osprey.Core.Autograd.GradTape([pa, pb]))
        {
            using var y = Op.Maximum(a, b);
            using var s = Op.Sum(y);
            tape.Backward(s);
        }
        Assert.Equal(new[] { 0.5f, 0f, 1f }, pa.Grad!.ToArray<float>());
        Assert.Equal(new[] { 0.5f, 1f, 0f }, pb.Grad!.ToArray<float>());
        pa.Dispose();
        pb.Dispose();
    }

    [Theory]
    [InlineData(new[] { 3, 5 }, new[] { 3, 5 }, new[] { 3, 5 })]
    [InlineData(new[] { 3, 1 }, new[] { 5 }, new[] { 1, 1 })]
    [InlineData(new[] { 2, 3, 5 }, new[] { 3, 1 }, new int[0])]
    public void Where_with_broadcasting(int[] sc, int[] sa, int[] sb)
    {
        var flags = Rand.Floats(5, new Shape(sc).Numel).Select(v => v > 0).ToArray();
        using var c = Tensor.FromSpan<bool>(flags, new Shape(sc));
        using var a = Rand.Tensor(3, new Shape(sa));
        using var b = Rand.Tensor(4, new Shape(sb));
        GradCheck.Check("where", t => Op.Where(c, t[0], t[1]), [a, b]);
    }

    [Theory]
    [InlineData(ReduceOp.Sum, new int[0], false)]
    [InlineData(ReduceOp.Sum, new[] { 1 }, false)]
    [InlineData(ReduceOp.Sum, new[] { 0, 2 }, true)]
    [InlineData(ReduceOp.Mean, new int[0], false)]
    [InlineData(ReduceOp.Mean, new[] { -1 }, true)]
    [InlineData(ReduceOp.Mean, new[] { 0, 1 }, false)]
    [InlineData(ReduceOp.Max, new[] { 1 }, false)]
    [InlineData(ReduceOp.Max, new[] { 0, 2 }, true)]
    [InlineData(ReduceOp.Min, new int[0], false)]
    [InlineData(ReduceOp.Min, new[] { 2 }, true)]
    public void Reduce(ReduceOp op, int[] axes, bool keepDims)
    {
        using var x = GradCheck.Distinct(9, new Shape(3, 4, 5));
        GradCheck.Check($"{op} [{string.Join(",", axes)}]", t => Op.Reduce(op, t[0], axes, keepDims), [x]);
    }

    [Theory]
    [InlineData(0, false)]
    [InlineData(1, false)]
    [InlineData(-1, true)]
    [InlineData(0, true)]
    public void Softmax(int axis, bool log)
    {
        using var x = Rand.Tensor(12, new Shape(3, 4, 5), -2f, 2f);
        GradCheck.Check(log ? "log_softmax" : "softmax", t => log ? Op.LogSoftmax(t[0], axis) : Op.Softmax(t[0], axis), [x]);
    }

    [Fact]
    public void Ssd_l2_normalisation()
    {
        // SSD's L2Norm: scale[c] * x / max(sqrt(sum_c x^2), eps)
        using var x = Rand.Tensor(13, new Shape(2, 5, 3, 3));
        using var scale = Rand.Tensor(14, new Shape(1, 5, 1, 1), 1f, 3f);
        GradCheck.Check("l2norm", t =>
        {
            using var sq = Op.Mul(t[0], t[0]);
            using var s = Op.Sum(sq, [1], keepDims: true);
            using var norm = Op.Sqrt(s);
            using var clamped = Op.Binary(BinaryOp.Max, norm, 1e-12);
            using var n = Op.Div(t[0], clamped);
            return Op.Mul(t[1], n);
        }, [x, scale]);
    }

    [Fact]
    public void Cast_round_trip_passes_the_gradient_through()
    {
        using var x = Rand.Tensor(15, new Shape(4, 3));
        GradCheck.Check("cast", t =>
        {
            using var h = Op.Cast(t[0], DType.BFloat16);
            using var back = Op.Cast(h, DType.Float32);
            return Op.Mul(back, back);
        }, [x], atol: 5e-2, rtol: 5e-2, eps: 5e-2);
    }
}
