namespace Osprey.Vision.Imaging;

/// <summary>Draws on an <see cref="RgbImage"/>: lines with thickness, rectangles (outlined or filled) and text in the
/// built-in bitmap font at an integer scale. Everything is clipped to the image; coordinates are pixels, y down.</summary>
public sealed class Canvas(RgbImage image)
{
    public RgbImage Image { get; } = image ?? throw new ArgumentNullException(nameof(image));

    public int Width => Image.Width;
    public int Height => Image.Height;

    public void Clear(Rgb8 color) => Image.Fill(color);

    /// <summary>Sets one pixel if it lies inside the image.</summary>
    public void Plot(int x, int y, Rgb8 color)
    {
        if (Image.Contains(x, y)) Image[x, y] = color;
    }

    /// <summary>Fills the rectangle [x, x+w) x [y, y+h), clipped.</summary>
    public void FillRect(int x, int y, int w, int h, Rgb8 color)
    {
        int x0 = Math.Max(x, 0), y0 = Math.Max(y, 0);
        int x1 = (int)Math.Min((long)x + w, Width), y1 = (int)Math.Min((long)y + h, Height);
        if (x0 >= x1 || y0 >= y1) return;
        var px = Image.Pixels;
        for (int yy = y0; yy < y1; yy++)
        {
            int o = (yy * Width + x0) * 3;
            for (int xx = x0; xx < x1; xx++, o += 3) { px[o] = color.R; px[o + 1] = color.G; px[o + 2] = color.B; }
        }
    }

    /// <summary>Outlines the rectangle [x, x+w) x [y, y+h) with lines of the given thickness drawn inwards.</summary>
    public void DrawRect(int x, int y, int w, int h, Rgb8 color, int thickness = 1)
    {
        if (w <= 0 || h <= 0 || thickness <= 0) return;
        int t = Math.Min(thickness, Math.Min((w + 1) / 2, (h + 1) / 2));
        FillRect(x, y, w, t, color);
        FillRect(x, y + h - t, w, t, color);
        FillRect(x, y + t, t, h - 2 * t, color);
        FillRect(x + w - t, y + t, t, h - 2 * t, color);
    }

    /// <summary>A straight line from (x0, y0) to (x1, y1) (Bresenham), each point stamped as a thickness x thickness
    /// square centred on the line. Segments are clipped to the image first, so far-away endpoints cost nothing.</summary>
    public void DrawLine(int x0, int y0, int x1, int y1, Rgb8 color, int thickness = 1)
    {
        if (thickness <= 0) return;
        int pad = thickness;
        double ax = x0, ay = y0, bx = x1, by = y1;
        if (!Clip(ref ax, ref ay, ref bx, ref by, -pad, -pad, Width - 1 + pad, Height - 1 + pad)) return;
        int px = (int)Math.Round(ax), py = (int)Math.Round(ay), qx = (int)Math.Round(bx), qy = (int)Math.Round(by);
        int lo = -(thickness - 1) / 2;
        int dx = Math.Abs(qx - px), dy = -Math.Abs(qy - py);
        int sx = px < qx ? 1 : -1, sy = py < qy ? 1 : -1;
        int err = dx + dy;
        while (true)
        {
            if (thickness == 1) Plot(px, py, color);
            else FillRect(px + lo, py + lo, thickness, thickness, color);
            if (px == qx && py == qy) break;
            int e2 = 2 * err;
            if (e2 >= dy) { err += dy; px += sx; }
            if (e2 <= dx) { err += dx; py += sy; }
        }
    }

    /// <summary>Liang-Barsky clipping of a segment to a box; false when nothing is left.</summary>
    private static bool Clip(ref double x0, ref double y0, ref double x1, ref double y1, double xmin, double ymin, double xmax, double ymax)
    {
        double t0 = 0, t1 = 1, dx = x1 - x0, dy = y1 - y0;
        ReadOnlySpan<double> p = [-dx, dx, -dy, dy];
        ReadOnlySpan<double> q = [x0 - xmin, xmax - x0, y0 - ymin, ymax - y0];
        for (int i = 0; i < 4; i++)
        {
            if (p[i] == 0) { if (q[i] < 0) return false; continue; }
            double t = q[i] / p[i];
            if (p[i] < 0) { if (t > t1) return false; if (t > t0) t0 = t; }
            else { if (t < t0) return false; if (t < t1) t1 = t; }
        }
        double nx0 = x0 + t0 * dx, ny0 = y0 + t0 * dy, nx1 = x0 + t1 * dx, ny1 = y0 + t1 * dy;
        (x0, y0, x1, y1) = (nx0, ny0, nx1, ny1);
        return true;
    }

    /// <summary>A polyline through the points, in pixels.</summary>
    public void DrawPolyline(ReadOnlySpan<(int X, int Y)> points, Rgb8 color, int thickness = 1)
    {
        for (int i = 1; i < points.Length; i++) DrawLine(points[i - 1].X, points[i - 1].Y, points[i].X, points[i].Y, color, thickness);
        if (points.Length == 1) DrawLine(points[0].X, points[0].Y, points[0].X, points[0].Y, color, thickness);
    }

    /// <summary>Draws one line of text with its top-left corner at (x, y); each font pixel becomes scale x scale.</summary>
    public void DrawText(int x, int y, string text, Rgb8 color, int scale = 1)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (scale <= 0) throw new ArgumentOutOfRangeException(nameof(scale), $"Canvas.DrawText: scale {scale} must be positive");
        for (int i = 0; i < text.Length; i++)
        {
            var rows = BitmapFont.Glyph(text[i]);
            int gx = x + i * BitmapFont.Advance * scale;
            for (int r = 0; r < BitmapFont.GlyphHeight; r++)
                for (int c = 0; c < BitmapFont.GlyphWidth; c++)
                    if (((rows[r] >> (BitmapFont.GlyphWidth - 1 - c)) & 1) != 0)
                        FillRect(gx + c * scale, y + r * scale, scale, scale, color);
        }
    }

    /// <summary>Text rotated 90 degrees counter-clockwise (reads bottom to top); its bounding box's top-left is (x, y).</summary>
    public void DrawTextVertical(int x, int y, string text, Rgb8 color, int scale = 1)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (scale <= 0) throw new ArgumentOutOfRangeException(nameof(scale), $"Canvas.DrawTextVertical: scale {scale} must be positive");
        var (length, _) = BitmapFont.Measure(text, scale);
        for (int i = 0; i < text.Length; i++)
        {
            var rows = BitmapFont.Glyph(text[i]);
            for (int r = 0; r < BitmapFont.GlyphHeight; r++)
                for (int c = 0; c < BitmapFont.GlyphWidth; c++)
                    if (((rows[r] >> (BitmapFont.GlyphWidth - 1 - c)) & 1) != 0)
                    {
                        int along = i * BitmapFont.Advance + c;
                        FillRect(x + r * scale, y + length - (along + 1) * scale, scale, scale, color);
                    }
        }
    }
}
