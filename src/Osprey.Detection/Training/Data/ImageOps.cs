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
