namespace Osprey.Vision.Imaging;

/// <summary>An 8-bit RGB colour.</summary>
public readonly record struct Rgb8(byte R, byte G, byte B)
{
    public static Rgb8 Black => new(0, 0, 0);
    public static Rgb8 White => new(255, 255, 255);
    public static Rgb8 Gray => new(128, 128, 128);
    public static Rgb8 LightGray => new(225, 225, 225);

    /// <summary>Distinct colours for series, classes and boxes (cycled by index).</summary>
    public static Rgb8 Palette(int index)
    {
        ReadOnlySpan<byte> p =
        [
            31, 119, 180, 255, 127, 14, 44, 160, 44, 214, 39, 40, 148, 103, 189,
            140, 86, 75, 227, 119, 194, 127, 127, 127, 188, 189, 34, 23, 190, 207,
        ];
        int i = ((index % 10) + 10) % 10 * 3;
        return new Rgb8(p[i], p[i + 1], p[i + 2]);
    }
}

/// <summary>An RGB8 image: row-major, 3 bytes per pixel, no padding.</summary>
public sealed class RgbImage
{
    public int Width { get; }
    public int Height { get; }

    /// <summary>Pixel bytes, R G B per pixel, row after row (Width * Height * 3).</summary>
    public byte[] Pixels { get; }

    public RgbImage(int width, int height)
    {
        if (width <= 0 || height <= 0 || (long)width * height * 3 > Array.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(width), $"RgbImage: size {width}x{height} must be positive and fit in one array");
        Width = width;
        Height = height;
        Pixels = new byte[width * height * 3];
    }

    public RgbImage(int width, int height, Rgb8 fill) : this(width, height) => Fill(fill);

    public bool Contains(int x, int y) => (uint)x < (uint)Width && (uint)y < (uint)Height;

    public Rgb8 this[int x, int y]
    {
        get
        {
            int o = Offset(x, y);
            return new Rgb8(Pixels[o], Pixels[o + 1], Pixels[o + 2]);
        }
        set
        {
            int o = Offset(x, y);
            Pixels[o] = value.R;
            Pixels[o + 1] = value.G;
            Pixels[o + 2] = value.B;
        }
    }

    /// <summary>One row's bytes.</summary>
    public Span<byte> Row(int y)
    {
        if ((uint)y >= (uint)Height) throw new ArgumentOutOfRangeException(nameof(y), $"RgbImage: row {y} outside 0..{Height - 1}");
        return Pixels.AsSpan(y * Width * 3, Width * 3);
    }

    public void Fill(Rgb8 c)
    {
        var row = Row(0);
        for (int x = 0; x < Width; x++) { row[x * 3] = c.R; row[x * 3 + 1] = c.G; row[x * 3 + 2] = c.B; }
        for (int y = 1; y < Height; y++) row.CopyTo(Row(y));
    }

    private int Offset(int x, int y)
    {
        if (!Contains(x, y)) throw new ArgumentOutOfRangeException(nameof(x), $"RgbImage: pixel ({x}, {y}) outside {Width}x{Height}");
        return (y * Width + x) * 3;
    }
}
