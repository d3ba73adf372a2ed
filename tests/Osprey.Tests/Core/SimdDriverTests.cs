using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Tests.Cuda;
using Osprey.Tests.Support;

namespace Osprey.Tests.Core;

/// <summary>
/// The span drivers at every length 0..256 (all vector widths, every tail) against the float64 scalar
/// reference shared with the GPU tests (HostRef). scripts/test.sh re-runs this category with AVX-512 off and with all
/// hardware intrinsics off, so the Vector256, Vector128-free and scalar paths are each covered.
/// </summary>
[Trait("Category", "Simd")]
public class SimdDriverTests
{
    public static TheoryData<UnaryKind> Kinds => new(Enum.GetValues<UnaryKind>());

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Unary_every_length_matches_scalar_reference(UnaryKind kind)
    {
        var op = new UnaryOp(kind, kind == UnaryKind.Clamp ? -0.5f : 0.1f, 0.7f);
        bool positive = kind is UnaryKind.Sqrt or UnaryKind.Log;
        for (int n = 0; n <= 256; n++)
        {
            var xs = Rand.Floats(n + 1000, n, positive ? 0.01f : -6f, 6f);
            using var x = Tensor.FromArray(xs, n);
            using var y = Op.Unary(op, x);
            var expected = xs.Select(v => (float)HostRef.Unary(op, v)).ToArray();
            Close.Assert(expected, y.ToArray<float>(), 1e-6, 1e-5, $"{kind} n={n}");
        }
    }

    [Theory]
    [InlineData(BinaryOp.Add)]
    [InlineData(BinaryOp.Sub)]
    [InlineData(BinaryOp.Mul)]
    [InlineData(BinaryOp.Div)]
    [InlineData(BinaryOp.Max)]
    [InlineData(BinaryOp.Min)]
    public void Binary_float_every_length_dense_and_scalar_broadcast(BinaryOp op)
    {
        static float F(BinaryOp op, float a, float b) => op switch
        {
            BinaryOp.Add => a + b,
            BinaryOp.Sub => a - b,
            BinaryOp.Mul => a * b,
            BinaryOp.Div => a / b,
            BinaryOp.Max => Math.Max(a, b),
            _ => Math.Min(a, b),
        };
        for (int n = 0; n <= 256; n++)
        {
            var av = Rand.Floats(n, n, -3, 3);
            var bv = Rand.Floats(n + 7, n, 0.5f, 3);
            using var a = Tensor.FromArray(av, n);
            using var b = Tensor.FromArray(bv, n);
            using var s = Tensor.FromArray(new[] { 1.75f }, 1);
            using var y = Op.Binary(op, a, b);
            using var ys = Op.Binary(op, a, s);
            using var sy = Op.Binary(op, s, a);
            Assert.Equal(av.Zip(bv, (p, q) => F(op, p, q)).ToArray(), y.ToArray<float>());
            Assert.Equal(av.Select(p => F(op, p, 1.75f)).ToArray(), ys.ToArray<float>());
            Assert.Equal(av.Select(p => F(op, 1.75f, p)).ToArray(), sy.ToArray<float>());
        }
    }

    [Fact]
    public void Binary_integers_every_length_wrap_like_scalars()
    {
        for (int n = 0; n <= 256; n++)
        {
            var rng = new Random(n);
            var a8 = Enumerable.Range(0, n).Select(_ => (byte)rng.Next(256)).ToArray();
            var b8 = Enumerable.Range(0, n).Select(_ => (byte)rng.Next(256)).ToArray();
            using var a = Tensor.FromArray(a8, n);
            using var b = Tensor.FromArray(b8, n);
            using var sum = Op.Add(a, b);
            using var mx = Op.Maximum(a, b);
            Assert.Equal(a8.Zip(b8, (p, q) => unchecked((byte)(p + q))).ToArray(), sum.ToArray<byte>());
            Assert.Equal(a8.Zip(b8, Math.Max).ToArray(), mx.ToArray<byte>());
            var a64 = Enumerable.Range(0, n).Select(_ => rng.NextInt64(long.MinValue, long.MaxValue)).ToArray();
            var b64 = Enumerable.Range(0, n).Select(_ => rng.NextInt64(long.MinValue, long.MaxValue)).ToArray();
            using var c = Tensor.FromArray(a64, n);
            using var d = Tensor.FromArray(b64, n);
            using var prod = Op.Mul(c, d);
            using var mn = Op.Minimum(c, d);
            Assert.Equal(a64.Zip(b64, (p, q) => unchecked(p * q)).ToArray(), prod.ToArray<long>());
            Assert.Equal(a64.Zip(b64, Math.Min).ToArray(), mn.ToArray<long>());
        }
    }

    [Fact]
    public void Sum_and_max_every_length_match_float64_reference()
    {
        for (int n = 0; n <= 256; n++)
        {
            var xs = Rand.Floats(n + 3, n, -100, 100);
            using var x = Tensor.FromArray(xs, n);
            using var s = Op.Sum(x);
            Assert.Equal((float)xs.Sum(v => (double)v), s.Item<float>());
            if (n == 0) continue;
            using var m = Op.Max(x);
            Assert.Equal(xs.Max(), m.Item<float>());
            using var sm = Op.Softmax(x, 0);
            double mx = xs.Max(), z = xs.Sum(v => Math.Exp(v - mx));
            Close.Assert(xs.Select(v => (float)(Math.Exp(v - mx) / z)).ToArray(), sm.ToArray<float>(), 1e-7, 1e-5, $"softmax n={n}");
        }
    }

    [Fact]
    public void Nan_propagates_through_vector_max_at_every_position()
    {
        for (int n = 1; n <= 70; n++)
            for (int at = 0; at < n; at += 7)
            {
                var xs = Rand.Floats(n, n);
                xs[at] = float.NaN;
                using var x = Tensor.FromArray(xs, n);
                using var m = Op.Max(x);
                Assert.True(float.IsNaN(m.Item<float>()), $"n={n} NaN at {at}");
                using var am = Op.ArgMax(x, 0);
                Assert.Equal(at, am.Item<long>());
            }
    }
}
