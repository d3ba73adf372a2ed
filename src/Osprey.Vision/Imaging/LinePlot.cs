using System.Globalization;

namespace Osprey.Vision.Imaging;

/// <summary>One curve: points (X[i], Y[i]) joined in order; NaN points break the line. Colour null = palette by index.</summary>
public sealed record PlotSeries(string Name, double[] X, double[] Y, Rgb8? Color = null);

/// <summary>Where the legend goes: a corner inside the axes, or beside them on the right (the axes shrink).</summary>
public enum LegendCorner { None, UpperLeft, UpperRight, LowerLeft, LowerRight, OutsideRight }

/// <summary>How a line plot looks; null axis limits are taken from the data.</summary>
public sealed record LinePlotOptions
{
    public int Width { get; init; } = 800;
    public int Height { get; init; } = 600;
    public string Title { get; init; } = "";
    public string XLabel { get; init; } = "";
    public string YLabel { get; init; } = "";
    public double? XMin { get; init; }
    public double? XMax { get; init; }
    public double? YMin { get; init; }
    public double? YMax { get; init; }
    /// <summary>Distance between ticks; null picks 1, 2 or 5 times a power of ten for about 5 to 10 ticks.</summary>
    public double? XTickStep { get; init; }
    public double? YTickStep { get; init; }
    /// <summary>Font pixels per glyph pixel (the font is 5x7).</summary>
    public int TextScale { get; init; } = 2;
    public int LineThickness { get; init; } = 2;
    public bool Grid { get; init; } = true;
    public LegendCorner Legend { get; init; } = LegendCorner.UpperRight;
    public Rgb8 Background { get; init; } = Rgb8.White;
}

/// <summary>Renders line plots (axes, ticks, tick labels, axis labels, title, grid, legend, several series) to an image.</summary>
public static class LinePlot
{
    public static RgbImage Render(IReadOnlyList<PlotSeries> series, LinePlotOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(series);
        var o = options ?? new LinePlotOptions();
        foreach (var sr in series)
            if (sr.X.Length != sr.Y.Length) throw new ArgumentException($"LinePlot: series '{sr.Name}' has {sr.X.Length} x values and {sr.Y.Length} y values", nameof(series));
        var (xmin, xmax) = Range(series, true, o.XMin, o.XMax);
        var (ymin, ymax) = Range(series, false, o.YMin, o.YMax);
        double xstep = o.XTickStep ?? NiceStep(xmax - xmin), ystep = o.YTickStep ?? NiceStep(ymax - ymin);
        var xticks = Ticks(xmin, xmax, xstep);
        var yticks = Ticks(ymin, ymax, ystep);

        var image = new RgbImage(o.Width, o.Height, o.Background);
        var c = new Canvas(image);
        int s = o.TextScale, ch = BitmapFont.GlyphHeight * s, pad = 4 * s;
        int yLabelWidth = 0;
        foreach (var t in yticks) yLabelWidth = Math.Max(yLabelWidth, BitmapFont.Measure(Label(t, ystep), s).Width);
        int left = pad + (o.YLabel.Length > 0 ? ch + pad : 0) + yLabelWidth + pad;
        int right = o.Width - Math.Max(pad * 2, BitmapFont.Measure(Label(xticks[^1], xstep), s).Width / 2 + pad);
        if (o.Legend == LegendCorner.OutsideRight && series.Count > 0) right -= LegendSize(series, o).Width + pad;
        int top = pad + (o.Title.Length > 0 ? ch + pad * 2 : pad);
        int bottom = o.Height - (pad + (o.XLabel.Length > 0 ? ch + pad : 0) + ch + pad);
        if (right - left < 10 || bottom - top < 10) throw new ArgumentException($"LinePlot: {o.Width}x{o.Height} is too small for text scale {s}", nameof(options));
        int Px(double x) => left + (int)Math.Round((x - xmin) / (xmax - xmin) * (right - left));
        int Py(double y) => bottom - (int)Math.Round((y - ymin) / (ymax - ymin) * (bottom - top));

        if (o.Grid)
        {
            foreach (var t in xticks) c.DrawLine(Px(t), top, Px(t), bottom, Rgb8.LightGray);
            foreach (var t in yticks) c.DrawLine(left, Py(t), right, Py(t), Rgb8.LightGray);
        }
        foreach (var t in xticks)
        {
            string text = Label(t, xstep);
            c.DrawLine(Px(t), bottom, Px(t), bottom + 2 * s, Rgb8.Black);
            c.DrawText(Px(t) - BitmapFont.Measure(text, s).Width / 2, bottom + 3 * s, text, Rgb8.Black, s);
        }
        foreach (var t in yticks)
        {
            string text = Label(t, ystep);
            c.DrawLine(left - 2 * s, Py(t), left, Py(t), Rgb8.Black);
            c.DrawText(left - 3 * s - BitmapFont.Measure(text, s).Width, Py(t) - ch / 2, text, Rgb8.Black, s);
        }
        if (o.Title.Length > 0) c.DrawText((left + right - BitmapFont.Measure(o.Title, s).Width) / 2, pad, o.Title, Rgb8.Black, s);
        if (o.XLabel.Length > 0) c.DrawText((left + right - BitmapFont.Measure(o.XLabel, s).Width) / 2, o.Height - pad - ch, o.XLabel, Rgb8.Black, s);
        if (o.YLabel.Length > 0) c.DrawTextVertical(pad, (top + bottom - BitmapFont.Measure(o.YLabel, s).Width) / 2, o.YLabel, Rgb8.Black, s);

        for (int i = 0; i < series.Count; i++)
        {
            var sr = series[i];
            var color = sr.Color ?? Rgb8.Palette(i);
            for (int j = 1; j < sr.X.Length; j++)
            {
                if (!double.IsFinite(sr.X[j - 1] + sr.Y[j - 1] + sr.X[j] + sr.Y[j])) continue;
                c.DrawLine(Px(sr.X[j - 1]), Py(sr.Y[j - 1]), Px(sr.X[j]), Py(sr.Y[j]), color, o.LineThickness);
            }
        }
        c.DrawRect(left, top, right - left + 1, bottom - top + 1, Rgb8.Black);
        if (o.Legend != LegendCorner.None && series.Count > 0) DrawLegend(c, series, o, left, top, right, bottom);
        return image;
    }

    private static void DrawLegend(Canvas c, IReadOnlyList<PlotSeries> series, LinePlotOptions o, int left, int top, int right, int bottom)
    {
        int s = o.TextScale, ch = BitmapFont.GlyphHeight * s, pad = 3 * s, swatch = 10 * s, rowH = ch + 2 * s;
        var (w, h) = LegendSize(series, o);
        int x = o.Legend switch
        {
            LegendCorner.UpperLeft or LegendCorner.LowerLeft => left + 2 * pad,
            LegendCorner.OutsideRight => right + 4 * s + pad,
            _ => right - 2 * pad - w,
        };
        int y = o.Legend is LegendCorner.UpperLeft or LegendCorner.UpperRight or LegendCorner.OutsideRight ? top + (o.Legend == LegendCorner.OutsideRight ? 0 : 2 * pad) : bottom - 2 * pad - h;
        c.FillRect(x, y, w, h, Rgb8.White);
        c.DrawRect(x, y, w, h, Rgb8.Gray);
        for (int i = 0; i < series.Count; i++)
        {
            int ry = y + pad + i * rowH;
            var color = series[i].Color ?? Rgb8.Palette(i);
            c.DrawLine(x + pad, ry + ch / 2, x + pad + swatch, ry + ch / 2, color, Math.Max(o.LineThickness, 2));
            c.DrawText(x + pad + swatch + pad, ry, series[i].Name, Rgb8.Black, s);
        }
    }

    private static (int Width, int Height) LegendSize(IReadOnlyList<PlotSeries> series, LinePlotOptions o)
    {
        int s = o.TextScale, ch = BitmapFont.GlyphHeight * s, pad = 3 * s, swatch = 10 * s, rowH = ch + 2 * s;
        int textW = 0;
        foreach (var sr in series) textW = Math.Max(textW, BitmapFont.Measure(sr.Name, s).Width);
        return (pad + swatch + pad + textW + pad, pad + series.Count * rowH - 2 * s + pad);
    }

    private static (double Lo, double Hi) Range(IReadOnlyList<PlotSeries> series, bool x, double? lo, double? hi)
    {
        double min = double.PositiveInfinity, max = double.NegativeInfinity;
        foreach (var s in series)
            foreach (var v in x ? s.X : s.Y)
                if (double.IsFinite(v)) { min = Math.Min(min, v); max = Math.Max(max, v); }
        if (!double.IsFinite(min)) (min, max) = (0, 1);
        double a = lo ?? min, b = hi ?? max;
        if (b <= a) { a -= 0.5; b += 0.5; }
        return (a, b);
    }

    /// <summary>1, 2 or 5 times a power of ten giving 5 to 10 intervals over the span.</summary>
    public static double NiceStep(double span)
    {
        if (!(span > 0) || !double.IsFinite(span)) return 1;
        double raw = span / 8, p = Math.Pow(10, Math.Floor(Math.Log10(raw))), m = raw / p;
        return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
    }

    private static List<double> Ticks(double lo, double hi, double step)
    {
        var t = new List<double>();
        double first = Math.Ceiling(lo / step - 1e-9) * step;
        for (int i = 0; i < 1000; i++)
        {
            double v = first + i * step;
            if (v > hi + step * 1e-9) break;
            t.Add(Math.Abs(v) < step * 1e-9 ? 0 : v);
        }
        if (t.Count == 0) t.Add(lo);
        return t;
    }

    private static string Label(double v, double step)
    {
        int decimals = Math.Clamp((int)Math.Ceiling(-Math.Log10(step) - 1e-9), 0, 10);
        return v.ToString("F" + decimals.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
    }
}
