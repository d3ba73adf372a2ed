using Osprey.Vision.Imaging;

namespace Osprey.Detection.Training.Data;

/// <summary>Resizing of 8-bit RGB images for augmentation.</summary>
public static class ImageResize
{
    /// <summary>Bilinear interpolation with half-pixel centres (align_corners=False), edge pixels replicated, rounded to nearest.</summary>
    public static RgbImage Bilinear(RgbImage src, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(src);
        var dst = new RgbImage(width, height);
        if (width == src.Width && height == src.Height) { src.Pixels.CopyTo(dst.Pixels, 0); return dst; }
        var x0 = new int[width];
        var x1 = new int[width];
        var fx = new float[width];
        double sx = (double)src.Width / width, sy = (double)src.Height / height;
        for (int x = 0; x < width; x++)
        {
            double f = Math.Max((x + 0.5) * sx - 0.5, 0);
            x0[x] = Math.Min((int)f, src.Width - 1);
            x1[x] = Math.Min(x0[x] + 1, src.Width - 1);
            fx[x] = (float)(f - x0[x]);
        }
        byte[] a = src.Pixels;
        int sw = src.Width * 3;
        for (int y = 0; y < height; y++)
        {
            double f = Math.Max((y + 0.5) * sy - 0.5, 0);
            int y0 = Math.Min((int)f, src.Height - 1), y1 = Math.Min(y0 + 1, src.Height - 1);
            float fy = (float)(f - y0);
            var row = dst.Row(y);
            for (int x = 0; x < width; x++)
                for (int c = 0; c < 3; c++)
                {
                    float top = a[y0 * sw + 3 * x0[x] + c] * (1 - fx[x]) + a[y0 * sw + 3 * x1[x] + c] * fx[x];
                    float bottom = a[y1 * sw + 3 * x0[x] + c] * (1 - fx[x]) + a[y1 * sw + 3 * x1[x] + c] * fx[x];
                    row[3 * x + c] = (byte)Math.Clamp(MathF.Round(top * (1 - fy) + bottom * fy), 0, 255);
                }
        }
        return dst;
    }
}

/// <summary>torchvision ColorJitter on an 8-bit image, in place: brightness, contrast, saturation and hue in a random order,
/// each blending in float and rounding back to 8 bits (grey = 0.2989 R + 0.587 G + 0.114 B, as torchvision).</summary>
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

    private static byte Clip(double v) => (byte)Math.Clamp(Math.Round(v), 0, 255);

    private static double Grey(byte[] p, int i) => 0.2989 * p[i] + 0.587 * p[i + 1] + 0.114 * p[i + 2];

    public static void Brightness(RgbImage image, double f)
    {
        var p = image.Pixels;
        for (int i = 0; i < p.Length; i++) p[i] = Clip(p[i] * f);
    }

    public static void Contrast(RgbImage image, double f)
    {
        var p = image.Pixels;
        double mean = 0;
        for (int i = 0; i < p.Length; i += 3) mean += Grey(p, i);
        mean /= p.Length / 3;
        for (int i = 0; i < p.Length; i++) p[i] = Clip(f * p[i] + (1 - f) * mean);
    }

    public static void Saturation(RgbImage image, double f)
    {
        var p = image.Pixels;
        for (int i = 0; i < p.Length; i += 3)
        {
            double g = Grey(p, i);
            for (int c = 0; c < 3; c++) p[i + c] = Clip(f * p[i + c] + (1 - f) * g);
        }
    }

    /// <summary>Rotates the hue by <paramref name="shift"/> turns (HSV).</summary>
    public static void Hue(RgbImage image, double shift)
    {
        var p = image.Pixels;
        for (int i = 0; i < p.Length; i += 3)
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
