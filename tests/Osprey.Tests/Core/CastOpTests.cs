using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Tests.Support;

namespace Osprey.Tests.Core;

public class CastOpTests
{
    public static TheoryData<string> Cases => Golden.Names("cast");

    /// <summary>
    /// Every ordered dtype pair, bit-exact against torch (NaN matches any NaN): float16/bfloat16 halfway
    /// cases, overflow to infinity, subnormals, float-to-int truncation and out-of-range values, integer
    /// wrapping, bool; plus a transposed source.
    /// </summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void Matches_torch_bit_for_bit(string name)
    {
        var c = Golden.Get("cast", name);
        using var x0 = c.Input(0);
        using var x = c.Bool("transpose") ? x0.Transpose(0, 1) : x0.Share();
        using var y = Op.Cast(x, Golden.ParseDType(c.Str("to")));
        using var e = c.Output(0);
        Assert.Equal(e.Shape, y.Shape);
        Assert.Equal(e.DType, y.DType);
        byte[] eb = Raw(e), yb = Raw(y);
        int size = e.ElementSize;
        for (int i = 0; i < eb.Length / size; i++)
        {
            var es = eb.AsSpan(i * size, size);
            var ys = yb.AsSpan(i * size, size);
            if (es.SequenceEqual(ys) || (IsNaN(e.DType, es) && IsNaN(y.DType, ys))) continue;
            Assert.Fail($"{name}: element {i} is {Convert.ToHexString(ys)}, torch gives {Convert.ToHexString(es)}");
        }
    }

    private static byte[] Raw(Tensor t)
    {
        var b = new byte[t.Numel * t.ElementSize];
        t.Backend.Download(t.Storage, t.Offset * t.ElementSize, b);
        return b;
    }

    private static bool IsNaN(DType d, ReadOnlySpan<byte> b) => d switch
    {
        DType.Float32 => float.IsNaN(BitConverter.ToSingle(b)),
        DType.Float16 => Half.IsNaN(BitConverter.ToHalf(b)),
        DType.BFloat16 => float.IsNaN(BitConverter.UInt32BitsToSingle((uint)BitConverter.ToUInt16(b) << 16)),
        _ => false,
    };

    [Fact]
    public void Nan_to_integer_gives_the_x86_indefinite_value()
    {
        using var x = Tensor.FromArray(new[] { float.NaN, 1e20f }, 2);
        using (var l = Op.Cast(x, DType.Int64)) Assert.Equal(new[] { long.MinValue, long.MinValue }, l.ToArray<long>());
        using (var i = Op.Cast(x, DType.Int32)) Assert.Equal(new[] { int.MinValue, int.MinValue }, i.ToArray<int>());
        using (var b = Op.Cast(x, DType.UInt8)) Assert.Equal(new byte[] { 0, 0 }, b.ToArray<byte>());
    }

    [Fact]
    public void Every_float16_value_round_trips_through_float32()
    {
        var all = new ushort[65536];
        for (int i = 0; i < all.Length; i++) all[i] = (ushort)i;
        using var bits = Tensor.FromArray(all.Select(u => BitConverter.UInt16BitsToHalf(u)).ToArray(), all.Length);
        using var f = Op.Cast(bits, DType.Float32);
        using var back = Op.Cast(f, DType.Float16);
        var r = back.ToArray<Half>();
        for (int i = 0; i < all.Length; i++)
        {
            Half h = BitConverter.UInt16BitsToHalf(all[i]);
            if (Half.IsNaN(h)) Assert.True(Half.IsNaN(r[i]));
            else Assert.Equal(all[i], BitConverter.HalfToUInt16Bits(r[i]));
        }
    }
}
