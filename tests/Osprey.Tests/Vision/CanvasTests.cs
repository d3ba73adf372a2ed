using Osprey.Vision.Imaging;

namespace Osprey.Tests.Vision;

public class CanvasTests
{
    private static int Count(RgbImage img, Rgb8 c)
    {
        int n = 0;
        for (int y = 0; y < img.Height; y++)
            for (int x = 0; x < img.Width; x++)
                if (img[x, y] == c) n++;
        return n;
    }

    private static readonly Rgb8 Red = new(255, 0, 0);

    [Fact]
    public void Rectangles_fill_and_outline_exact_pixels()
    {
        var c = new Canvas(new RgbImage(20, 10, Rgb8.White));
        c.FillRect(2, 3, 4, 5, Red);
        Assert.Equal(20, Count(c.Image, Red));
        Assert.Equal(Red, c.Image[2, 3]);
        Assert.Equal(Red, c.Image[5, 7]);
        Assert.Equal(Rgb8.White, c.Image[6, 7]);
        c.Clear(Rgb8.White);
        c.DrawRect(0, 0, 10, 6, Red, 2);
        Assert.Equal(10 * 6 - 6 * 2, Count(c.Image, Red));
    }

    [Fact]
    public void Drawing_is_clipped_to_the_image()
    {
        var c = new Canvas(new RgbImage(8, 8, Rgb8.White));
        c.FillRect(-5, -5, 8, 8, Red);
        Assert.Equal(9, Count(c.Image, Red));
        c.DrawLine(-1_000_000, 4, 1_000_000, 4, Red, 1);
        Assert.Equal(9 + 8, Count(c.Image, Red)); // the whole row y = 4
        c.DrawText(6, 6, "WWW", Red, 3);
        c.DrawLine(int.MinValue / 2, int.MinValue / 2, int.MaxValue / 2, int.MaxValue / 2, Red, 3);
    }

    [Fact]
    public void Lines_cover_both_endpoints_with_thickness()
    {
        var c = new Canvas(new RgbImage(30, 30, Rgb8.White));
        c.DrawLine(3, 4, 25, 19, Red, 1);
        Assert.Equal(Red, c.Image[3, 4]);
        Assert.Equal(Red, c.Image[25, 19]);
        Assert.Equal(23, Count(c.Image, Red)); // one pixel per step along the major axis
        c.Clear(Rgb8.White);
        c.DrawLine(5, 10, 20, 10, Red, 3);
        Assert.Equal((16 + 2) * 3, Count(c.Image, Red)); // square pen: one pixel beyond each end
    }

    [Fact]
    public void Text_uses_the_glyph_bitmaps_at_integer_scale()
    {
        var c = new Canvas(new RgbImage(40, 20, Rgb8.White));
        c.DrawText(1, 1, "I", Red, 2);
        int ink = 0;
        foreach (var row in BitmapFont.Glyph('I')) ink += System.Numerics.BitOperations.PopCount(row);
        Assert.Equal(ink * 4, Count(c.Image, Red));
        Assert.Equal((6 * 3 - 1) * 2, BitmapFont.Measure("abc", 2).Width);
        // every printable character has ink except space, and unknown characters draw as '?'
        for (char ch = '!'; ch <= '~'; ch++)
        {
            int bits = 0;
            foreach (var row in BitmapFont.Glyph(ch)) bits |= row;
            Assert.True(bits != 0, $"glyph '{ch}' is empty");
        }
        Assert.True(BitmapFont.Glyph('\u00e9').SequenceEqual(BitmapFont.Glyph('?')));
    }

    [Fact]
    public void Line_plot_renders_series_and_rejects_ragged_input()
    {
        var series = new[]
        {
            new PlotSeries("a", [0, 0.5, 1], [1, 0.5, 0]),
            new PlotSeries("b", [0, 1], [0.2, 0.2], new Rgb8(0, 0, 255)),
        };
        var img = LinePlot.Render(series, new LinePlotOptions { Width = 320, Height = 240, Title = "t", XLabel = "x", YLabel = "y" });
        Assert.True(Count(img, Rgb8.Palette(0)) > 100);
        Assert.True(Count(img, new Rgb8(0, 0, 255)) > 100);
        Assert.Throws<ArgumentException>(() => LinePlot.Render([new PlotSeries("bad", [0, 1], [0])]));
        var png = PngEncoderTests.Decode(PngEncoder.Encode(img));
        Assert.Equal(img.Pixels, png.Pixels);
    }
}
