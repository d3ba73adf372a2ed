using System.Text.Json;
using Osprey.Vision.Imaging;

namespace Osprey.Detection.Training.Data;

/// <summary>Settings of <see cref="SyntheticShapes"/>: how many images, their size range, objects per image and the seed.</summary>
public sealed record SyntheticShapesOptions(int Images = 300, int MinSize = 128, int MaxSize = 256, int MaxObjects = 4, int Seed = 1,
    int MinObjectSize = 16)
{
    internal void Check()
    {
        if (Images <= 0 || MinSize < 32 || MaxSize < MinSize || MaxObjects <= 0 || MinObjectSize < 4 || MinObjectSize * 2 > MinSize)
            throw new ArgumentException($"synthetic shapes: {this} (need images > 0, 32 <= min size <= max size, objects > 0, 4 <= object size <= min size / 2)");
    }
}

/// <summary>What <see cref="SyntheticShapes.Generate"/> wrote.</summary>
public sealed record SyntheticDataset(string AnnotationsPath, string ImageDirectory, int Images, int Objects);

/// <summary>
/// The synthetic detection set of <c>osprey demo</c>: filled rectangles, ellipses and triangles (the three classes) in random
/// colours on textured backgrounds (gradient, stripes or checks, plus noise), written as PNG files and a COCO instances JSON.
/// Objects do not overlap, so every box is the tight box of its shape's pixels; the area is the shape's pixel count.
/// The output depends only on the options (seeded).
/// </summary>
public static class SyntheticShapes
{
    public static IReadOnlyList<string> ClassNames { get; } = ["rectangle", "ellipse", "triangle"];

    /// <summary>Writes <c>images/NNNNN.png</c> and <c>annotations.json</c> under <paramref name="directory"/>.</summary>
    public static SyntheticDataset Generate(string directory, SyntheticShapesOptions options)
    {
        ArgumentNullException.ThrowIfNull(directory);
        ArgumentNullException.ThrowIfNull(options);
        options.Check();
        string imageDir = Path.Combine(directory, "images");
        Directory.CreateDirectory(imageDir);
        string annPath = Path.Combine(directory, "annotations.json");
        var rng = new Random(options.Seed);
        int objects = 0;
        using var stream = File.Create(annPath);
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = false });
        json.WriteStartObject();
        json.WriteStartObject("info");
        json.WriteString("description", $"Osprey synthetic shapes, seed {options.Seed}");
        json.WriteEndObject();
        json.WriteStartArray("categories");
        for (int c = 0; c < ClassNames.Count; c++)
        {
            json.WriteStartObject();
            json.WriteNumber("id", c + 1);
            json.WriteString("name", ClassNames[c]);
            json.WriteString("supercategory", "shape");
            json.WriteEndObject();
        }
        json.WriteEndArray();
        var annotations = new List<(int Image, int Category, int X, int Y, int W, int H, int Area)>();
        json.WriteStartArray("images");
        for (int i = 0; i < options.Images; i++)
        {
            int w = rng.Next(options.MinSize, options.MaxSize + 1), h = rng.Next(options.MinSize, options.MaxSize + 1);
            var img = new RgbImage(w, h);
            Background(img, rng);
            var placed = new List<(int X0, int Y0, int X1, int Y1)>();
            int want = rng.Next(1, options.MaxObjects + 1);
            for (int tries = 0; placed.Count < want && tries < 50; tries++)
            {
                int maxSide = Math.Min(w, h) / 2;
                int ow = rng.Next(options.MinObjectSize, maxSide + 1), oh = rng.Next(options.MinObjectSize, maxSide + 1);
                int ox = rng.Next(0, w - ow + 1), oy = rng.Next(0, h - oh + 1);
                // keep a 2-pixel gap so shapes never touch
                bool free = true;
                foreach (var p in placed)
                    if (ox < p.X1 + 2 && p.X0 < ox + ow + 2 && oy < p.Y1 + 2 && p.Y0 < oy + oh + 2) { free = false; break; }
                if (!free) continue;
                int cls = rng.Next(ClassNames.Count);
                var colour = ShapeColour(rng);
                var (bx0, by0, bx1, by1, area) = DrawShape(img, cls, ox, oy, ow, oh, colour, rng);
                if (area == 0) continue;
                placed.Add((ox, oy, ox + ow, oy + oh));
                annotations.Add((i + 1, cls + 1, bx0, by0, bx1 - bx0, by1 - by0, area));
            }
            string file = $"{i:D5}.png";
            PngEncoder.Save(img, Path.Combine(imageDir, file));
            json.WriteStartObject();
            json.WriteNumber("id", i + 1);
            json.WriteString("file_name", file);
            json.WriteNumber("width", w);
            json.WriteNumber("height", h);
            json.WriteEndObject();
        }
        json.WriteEndArray();
        json.WriteStartArray("annotations");
        foreach (var a in annotations)
        {
            json.WriteStartObject();
            json.WriteNumber("id", ++objects);
            json.WriteNumber("image_id", a.Image);
            json.WriteNumber("category_id", a.Category);
            json.WriteStartArray("bbox");
            json.WriteNumberValue(a.X); json.WriteNumberValue(a.Y); json.WriteNumberValue(a.W); json.WriteNumberValue(a.H);
            json.WriteEndArray();
            json.WriteNumber("area", a.Area);
            json.WriteNumber("iscrowd", 0);
            json.WriteEndObject();
        }
        json.WriteEndArray();
        json.WriteEndObject();
        return new SyntheticDataset(annPath, imageDir, options.Images, objects);
    }

    private static void Background(RgbImage img, Random rng)
    {
        var a = RandomColour(rng, 40, 200);
        var b = RandomColour(rng, 40, 200);
        int kind = rng.Next(3);
        int period = rng.Next(6, 24);
        double angle = rng.NextDouble() * Math.PI;
        double cs = Math.Cos(angle), sn = Math.Sin(angle);
        var p = img.Pixels;
        for (int y = 0; y < img.Height; y++)
            for (int x = 0; x < img.Width; x++)
            {
                double t = kind switch
                {
                    0 => (x * cs + y * sn) / (img.Width + img.Height) + 0.5,                    // gradient
                    1 => ((int)Math.Floor((x * cs + y * sn) / period) & 1) * 0.6 + 0.2,      // stripes
                    _ => ((x / period + y / period) & 1) * 0.5 + 0.25,                         // checks
                };
                t = Math.Clamp(t, 0, 1);
                int o = (y * img.Width + x) * 3;
                int noise = rng.Next(-12, 13);
                p[o] = Clip(a.R + (b.R - a.R) * t + noise);
                p[o + 1] = Clip(a.G + (b.G - a.G) * t + noise);
                p[o + 2] = Clip(a.B + (b.B - a.B) * t + noise);
            }
    }

    private static Rgb8 RandomColour(Random rng, int lo, int hi) => new((byte)rng.Next(lo, hi), (byte)rng.Next(lo, hi), (byte)rng.Next(lo, hi));

    /// <summary>A saturated colour (one channel high, one low) that stands out from the muted backgrounds.</summary>
    private static Rgb8 ShapeColour(Random rng)
    {
        Span<byte> c = [(byte)rng.Next(220, 256), (byte)rng.Next(0, 40), (byte)rng.Next(0, 256)];
        rng.Shuffle(c);
        return new Rgb8(c[0], c[1], c[2]);
    }

    private static byte Clip(double v) => (byte)Math.Clamp((int)Math.Round(v), 0, 255);

    /// <summary>Fills the shape inside the cell and returns the tight box of the filled pixels [x0, x1) x [y0, y1) and their count.</summary>
    private static (int X0, int Y0, int X1, int Y1, int Area) DrawShape(RgbImage img, int cls, int ox, int oy, int ow, int oh, Rgb8 colour, Random rng)
    {
        // triangle vertices: one on the top edge, two on the bottom corners (shuffled vertically)
        double ax = ox + rng.NextDouble() * ow, ay = oy, bx = ox, by = oy + oh, cx = ox + ow, cy = oy + oh;
        if (cls == 2 && rng.Next(2) == 0) { ay = oy + oh; by = oy; cy = oy; }
        int x0 = int.MaxValue, y0 = int.MaxValue, x1 = 0, y1 = 0, area = 0;
        for (int y = oy; y < oy + oh; y++)
            for (int x = ox; x < ox + ow; x++)
            {
                double px = x + 0.5, py = y + 0.5;
                bool inside = cls switch
                {
                    0 => true,
                    1 => Sq((px - ox - ow / 2.0) / (ow / 2.0)) + Sq((py - oy - oh / 2.0) / (oh / 2.0)) <= 1,
                    _ => InTriangle(px, py, ax, ay, bx, by, cx, cy),
                };
                if (!inside) continue;
                img[x, y] = colour;
                area++;
                x0 = Math.Min(x0, x); y0 = Math.Min(y0, y); x1 = Math.Max(x1, x + 1); y1 = Math.Max(y1, y + 1);
            }
        return area == 0 ? (0, 0, 0, 0, 0) : (x0, y0, x1, y1, area);
    }

    private static double Sq(double v) => v * v;

    private static bool InTriangle(double px, double py, double ax, double ay, double bx, double by, double cx, double cy)
    {
        double d1 = (px - bx) * (ay - by) - (ax - bx) * (py - by);
        double d2 = (px - cx) * (by - cy) - (bx - cx) * (py - cy);
        double d3 = (px - ax) * (cy - ay) - (cx - ax) * (py - ay);
        bool neg = d1 < 0 || d2 < 0 || d3 < 0, pos = d1 > 0 || d2 > 0 || d3 > 0;
        return !(neg && pos);
    }
}
