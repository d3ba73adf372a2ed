using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Osprey.Vision.Imaging;

namespace Osprey.Detection.Training.Data;

/// <summary>
/// torchvision ColorJitter on an 8-bit image, in place: brightness, contrast, saturation and hue in a random order, each
/// blending in float64 and rounding back to 8 bits (grey = 0.2989 R + 0.587 G + 0.114 B, as torchvision). The bytes are
/// exactly <see cref="ColorJitterReference"/>'s: brightness and contrast map each byte value through a 256-entry table of the
/// reference expression (their output depends on the byte alone once the factor and the mean are known; the mean is summed in
/// the reference's order); with AVX2, saturation and hue run the reference's float64 arithmetic, operation for operation, on
/// four pixels per Vector256 (IEEE division, floor and round-half-even are exact lane by lane, and .NET never fuses a
/// multiply-add on its own; hue divides by 255 through an FMA residual step, exact on the 256 byte values, and makes one division
/// of the selected branch where the reference writes three); the last pixels, and every pixel without AVX2/FMA, take the reference.
/// </summary>
public static class ColorJitter
{
    public static void Apply(RgbImage image, AugmentOptions o, Random rng)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(o);
        ArgumentNullException.ThrowIfNull(rng);
        Span<int> order = [0, 1, 2, 3];
        rng.Shuffle(order);
        foreach (int op in order)
        {
            switch (op)
            {
                case 0 when o.Brightness > 0: Brightness(image, Factor(rng, o.Brightness)); break;
                case 1 when o.Contrast > 0: Contrast(image, Factor(rng, o.Contrast)); break;
                case 2 when o.Saturation > 0: Saturation(image, Factor(rng, o.Saturation)); break;
                case 3 when o.Hue > 0: Hue(image, (rng.NextDouble() * 2 - 1) * o.Hue); break;
            }
        }
    }

    private static double Factor(Random rng, double v) => Math.Max(0, 1 - v) + rng.NextDouble() * (1 + v - Math.Max(0, 1 - v));

    public static void Brightness(RgbImage image, double f)
    {
        ArgumentNullException.ThrowIfNull(image);
        Span<byte> lut = stackalloc byte[256];
        for (int v = 0; v < 256; v++) lut[v] = ColorJitterReference.Clip(v * f);
        Map(image.Pixels, lut);
    }

    public static void Contrast(RgbImage image, double f)
    {
        ArgumentNullException.ThrowIfNull(image);
        double mean = ColorJitterReference.MeanGrey(image.Pixels);
        Span<byte> lut = stackalloc byte[256];
        for (int v = 0; v < 256; v++) lut[v] = ColorJitterReference.Clip(f * v + (1 - f) * mean);
        Map(image.Pixels, lut);
    }

    private static void Map(Span<byte> p, ReadOnlySpan<byte> lut)
    {
        if (lut.Length != 256) throw new ArgumentException($"colour jitter: a byte table has {lut.Length} entries, not 256");
        // a byte indexes a 256-entry table: always in range, so the loop reads it without bounds checks
        ref byte table = ref MemoryMarshal.GetReference(lut);
        for (int i = 0; i < p.Length; i++) p[i] = Unsafe.Add(ref table, p[i]);
    }

    public static void Saturation(RgbImage image, double f)
    {
        ArgumentNullException.ThrowIfNull(image);
        var p = image.Pixels.AsSpan();
        int done = 0;
        if (Avx2.IsSupported)
        {
            var vf = Vector256.Create(f);
            var vg = Vector256.Create(1 - f);
            for (; done + 16 <= p.Length; done += 12)
            {
                var (raw, r, g, b) = Load(p, done);
                var grey = Vector256.Create(0.2989) * r + Vector256.Create(0.587) * g + Vector256.Create(0.114) * b;
                var mix = vg * grey;
                Store(p, done, raw, vf * r + mix, vf * g + mix, vf * b + mix, Vector256<double>.AllBitsSet);
            }
        }
        ColorJitterReference.Saturation(p[done..], f);
    }

    /// <summary>Rotates the hue by <paramref name="shift"/> turns (HSV).</summary>
    public static void Hue(RgbImage image, double shift)
    {
        ArgumentNullException.ThrowIfNull(image);
        var p = image.Pixels.AsSpan();
        int done = 0;
        if (Avx2.IsSupported && Fma.IsSupported)
        {
            var one = Vector256.Create(1.0);
            var six = Vector256.Create(6.0);
            var vshift = Vector256.Create(shift);
            for (; done + 16 <= p.Length; done += 12)
            {
                var (raw, r, g, b) = Load(p, done);
                r = DivideBy255(r); g = DivideBy255(g); b = DivideBy255(b);
                var max = Avx.Max(r, Avx.Max(g, b));
                var min = Avx.Min(r, Avx.Min(g, b));
                var d = max - min;
                var change = ~Vector256.Equals(d, Vector256<double>.Zero);
                if (Avx.MoveMask(change) == 0) continue;
                var isR = Vector256.Equals(max, r);
                var isG = Vector256.Equals(max, g);
                // one division for the selected branch; adding 0 to the red branch changes nothing (g - b is never -0)
                var h = Vector256.ConditionalSelect(isR, g - b, Vector256.ConditionalSelect(isG, b - r, r - g)) / d
                    + Vector256.ConditionalSelect(isR, Vector256<double>.Zero, Vector256.ConditionalSelect(isG, Vector256.Create(2.0), Vector256.Create(4.0)));
                h = h / six + vshift;
                h -= Avx.Floor(h);
                var s = d / max;
                var v = max;
                var hh = h * six;
                var floor = Avx.Floor(hh);
                var frac = hh - floor;
                var pp = v * (one - s);
                var q = v * (one - s * frac);
                var t = v * (one - s * (one - frac));
                // sector = (int)hh % 6: hh is in [0, 6], and 6 (h rounded up to 1) is sector 0
                var s1 = Vector256.Equals(floor, one);
                var s2 = Vector256.Equals(floor, Vector256.Create(2.0));
                var s3 = Vector256.Equals(floor, Vector256.Create(3.0));
                var s4 = Vector256.Equals(floor, Vector256.Create(4.0));
                var s5 = Vector256.Equals(floor, Vector256.Create(5.0));
                // sector:  0: (v, t, pp)  1: (q, v, pp)  2: (pp, v, t)  3: (pp, q, v)  4: (t, pp, v)  5: (v, pp, q)
                var ro = Select6(s1, s2, s3, s4, s5, v, q, pp, pp, t, v);
                var go = Select6(s1, s2, s3, s4, s5, t, v, v, q, pp, pp);
                var bo = Select6(s1, s2, s3, s4, s5, pp, pp, t, v, v, q);
                var scale = Vector256.Create(255.0);
                Store(p, done, raw, ro * scale, go * scale, bo * scale, change);
            }
        }
        ColorJitterReference.Hue(p[done..], shift);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<double> Select6(Vector256<double> s1, Vector256<double> s2, Vector256<double> s3, Vector256<double> s4, Vector256<double> s5,
        Vector256<double> v0, Vector256<double> v1, Vector256<double> v2, Vector256<double> v3, Vector256<double> v4, Vector256<double> v5)
    {
        var x = Vector256.ConditionalSelect(s1, v1, v0);
        x = Vector256.ConditionalSelect(s2, v2, x);
        x = Vector256.ConditionalSelect(s3, v3, x);
        x = Vector256.ConditionalSelect(s4, v4, x);
        return Vector256.ConditionalSelect(s5, v5, x);
    }

    /// <summary>The 16 bytes from <paramref name="i"/> and the first four RGB pixels in them as float64 planes (AVX2).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector128<byte> Raw, Vector256<double> R, Vector256<double> G, Vector256<double> B) Load(ReadOnlySpan<byte> p, int i)
    {
        var raw = Vector128.Create(p.Slice(i, 16));
        var planar = Ssse3.Shuffle(raw, Vector128.Create((byte)0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11, 0x80, 0x80, 0x80, 0x80));
        var r = Avx.ConvertToVector256Double(Sse41.ConvertToVector128Int32(planar));
        var g = Avx.ConvertToVector256Double(Sse41.ConvertToVector128Int32(Sse2.ShiftRightLogical128BitLane(planar, 4)));
        var b = Avx.ConvertToVector256Double(Sse41.ConvertToVector128Int32(Sse2.ShiftRightLogical128BitLane(planar, 8)));
        return (raw, r, g, b);
    }

    /// <summary>v / 255 correctly rounded for the integers 0..255 without a division: the product with 1/255 is wrong in the last
    /// bit for 24 of them, and one FMA residual step fixes all (every value is checked through the hue tests' colour cube).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<double> DivideBy255(Vector256<double> v)
    {
        var inv = Vector256.Create(1.0 / 255.0);
        var q = v * inv;
        return Fma.MultiplyAdd(Fma.MultiplyAddNegated(q, Vector256.Create(255.0), v), inv, q);
    }

    /// <summary>Byte masks of the 12 pixel bytes of four pixels, by the 4-bit mask of the pixels to write.</summary>
    private static readonly Vector128<byte>[] PixelMasks = BuildPixelMasks();

    private static Vector128<byte>[] BuildPixelMasks()
    {
        var masks = new Vector128<byte>[16];
        Span<byte> m = stackalloc byte[16];
        for (int bits = 0; bits < 16; bits++)
        {
            m.Clear();
            for (int k = 0; k < 4; k++)
                if ((bits >> k & 1) != 0) m.Slice(3 * k, 3).Fill(0xFF);
            masks[bits] = Vector128.Create<byte>(m);
        }
        return masks;
    }

    /// <summary>Rounds half to even, clips to [0, 255] and writes the four pixels whose <paramref name="mask"/> lane is set; the
    /// other bytes of the 16 (<paramref name="raw"/>, as loaded) are written back unchanged.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(Span<byte> p, int i, Vector128<byte> raw, Vector256<double> r, Vector256<double> g, Vector256<double> b, Vector256<double> mask)
    {
        var lo = Vector256<double>.Zero;
        var hi = Vector256.Create(255.0);
        var ri = Avx.ConvertToVector128Int32WithTruncation(Avx.Min(Avx.Max(Avx.RoundToNearestInteger(r), lo), hi));
        var gi = Avx.ConvertToVector128Int32WithTruncation(Avx.Min(Avx.Max(Avx.RoundToNearestInteger(g), lo), hi));
        var bi = Avx.ConvertToVector128Int32WithTruncation(Avx.Min(Avx.Max(Avx.RoundToNearestInteger(b), lo), hi));
        var planar = Sse2.PackUnsignedSaturate(Sse2.PackSignedSaturate(ri, gi), Sse2.PackSignedSaturate(bi, Vector128<int>.Zero));
        var rgb = Ssse3.Shuffle(planar, Vector128.Create((byte)0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11, 12, 13, 14, 15));
        Sse41.BlendVariable(raw, rgb, PixelMasks[Avx.MoveMask(mask)]).CopyTo(p.Slice(i, 16));
    }
}
