using System.Runtime.CompilerServices;

namespace Osprey.Core.Tensors;

/// <summary>
/// bfloat16: the upper 16 bits of an IEEE float32. Conversion from float rounds to nearest even,
/// as PyTorch does; NaN stays NaN (quiet).
/// </summary>
public readonly struct BFloat16 : IEquatable<BFloat16>
{
    public readonly ushort Bits;

    private BFloat16(ushort bits) => Bits = bits;

    public static BFloat16 FromBits(ushort bits) => new(bits);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static BFloat16 FromFloat(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        if ((u & 0x7FFF_FFFFu) > 0x7F80_0000u) return new BFloat16((ushort)((u >> 16) | 0x0040)); // quiet NaN
        uint rounding = 0x7FFFu + ((u >> 16) & 1u);
        return new BFloat16((ushort)((u + rounding) >> 16));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float ToFloat() => BitConverter.UInt32BitsToSingle((uint)Bits << 16);

    public static explicit operator BFloat16(float f) => FromFloat(f);
    public static explicit operator float(BFloat16 b) => b.ToFloat();

    public bool Equals(BFloat16 other) => Bits == other.Bits;
    public override bool Equals(object? obj) => obj is BFloat16 b && Equals(b);
    public override int GetHashCode() => Bits;
    public override string ToString() => ToFloat().ToString(System.Globalization.CultureInfo.InvariantCulture);
    public static bool operator ==(BFloat16 a, BFloat16 b) => a.Bits == b.Bits;
    public static bool operator !=(BFloat16 a, BFloat16 b) => a.Bits != b.Bits;
}
