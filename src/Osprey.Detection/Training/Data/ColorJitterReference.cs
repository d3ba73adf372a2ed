namespace Osprey.Detection.Training.Data;

/// <summary>
/// The plain scalar colour jitter (one pixel at a time, float64 blending, rounded half to even and clipped back to 8 bits;
/// grey = 0.2989 R + 0.587 G + 0.114 B, as torchvision). <see cref="ColorJitter"/>'s fast paths produce exactly these bytes
/// (tests pin them) and call the span forms here for their tails; `Osprey.Bench train-data` times both.
/// </summary>
internal static class ColorJitterReference
{
    internal static byte Clip(double v) => (byte)Math.Clamp(Math.Round(v), 0, 255);

    internal static double Grey(ReadOnlySpan<byte> p, int i) => 0.2989 * p[i] + 0.587 * p[i + 1] + 0.114 * p[i + 2];

    public static void Brightness(Span<byte> p, double f)
    {
        for (int i = 0; i < p.Length; i++) p[i] = Clip(p[i] * f);
    }

    /// <summary>The mean grey of the image, summed pixel by pixel in order (the fast path sums it the same way).</summary>
    public static double MeanGrey(ReadOnlySpan<byte> p)
    {
        double mean = 0;
        for (int i = 0; i < p.Length; i += 3) mean += Grey(p, i);
        return mean / (p.Length / 3);
    }

    public static void Contrast(Span<byte> p, double f)
    {
        double mean = MeanGrey(p);
        for (int i = 0; i < p.Length; i++) p[i] = Clip(f * p[i] + (1 - f) * mean);
    }

    /// <summary>Saturation on whole RGB pixels.</summary>
    public static void Saturation(Span<byte> p, double f)
    {
        for (int i = 0; i + 2 < p.Length; i += 3)
        {
            double g = Grey(p, i);
            for (int c = 0; c < 3; c++) p[i + c] = Clip(f * p[i + c] + (1 - f) * g);
        }
    }

    /// <summary>Rotates the hue of whole RGB pixels by <paramref name="shift"/> turns (HSV).</summary>
    public static void Hue(Span<byte> p, double shift)
    {
        for (int i = 0; i + 2 < p.Length; i += 3)
        {
            double r = p[i] / 255.0, g = p[i + 1] / 255.0, b = p[i + 2] / 255.0;
            double max = Math.Max(r, Math.Max(g, b)), min = Math.Min(r, Math.Min(g, b)), d = max - min;
            if (d == 0) continue;
            double h = max == r ? (g - b) / d : max == g ? 2 + (b - r) / d : 4 + (r - g) / d;
            h = h / 6 + shift;
            h -= Math.Floor(h);
            double s = d / max, v = max;
            double hh = h * 6;
            int sector = (int)hh % 6;
            double frac = hh - Math.Floor(hh);
            double pp = v * (1 - s), q = v * (1 - s * frac), t = v * (1 - s * (1 - frac));
            (r, g, b) = sector switch { 0 => (v, t, pp), 1 => (q, v, pp), 2 => (pp, v, t), 3 => (pp, q, v), 4 => (t, pp, v), _ => (v, pp, q) };
            p[i] = Clip(r * 255); p[i + 1] = Clip(g * 255); p[i + 2] = Clip(b * 255);
        }
    }
}
