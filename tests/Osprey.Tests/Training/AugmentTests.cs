using Osprey.Detection.Training.Data;
using Osprey.Vision.Imaging;

namespace Osprey.Tests.Training;

/// <summary>Property tests: every augmentation moves boxes exactly as it moves the pixels and keeps them valid.</summary>
public class AugmentTests
{
    /// <summary>An image with non-overlapping solid rectangles, each in a colour used nowhere else, and their exact boxes.</summary>
    internal static DetectionSample Marked(int seed, out Rgb8[] colours)
    {
        var rng = new Random(seed);
        int w = rng.Next(40, 90), h = rng.Next(40, 90);
        var img = new RgbImage(w, h, new Rgb8(10, 10, 10));
        var boxes = new List<float>();
        var list = new List<Rgb8>();
        var taken = new List<(int, int, int, int)>();
        for (int t = 0; t < 30 && list.Count < 4; t++)
        {
            int bw = rng.Next(3, w / 2), bh = rng.Next(3, h / 2), x = rng.Next(w - bw + 1), y = rng.Next(h - bh + 1);
            if (taken.Any(r => x < r.Item3 && r.Item1 < x + bw && y < r.Item4 && r.Item2 < y + bh)) continue;
            taken.Add((x, y, x + bw, y + bh));
            var c = new Rgb8((byte)(100 + 30 * list.Count), 200, (byte)(50 + list.Count));
            list.Add(c);
            new Canvas(img).FillRect(x, y, bw, bh, c);
            boxes.AddRange([x, y, x + bw, y + bh]);
        }
        colours = list.ToArray();
        return new DetectionSample(img, boxes.ToArray(), Enumerable.Range(0, list.Count).ToArray(), seed, "marked");
    }

    /// <summary>The tight box of the pixels of one colour, or null when absent.</summary>
    private static float[]? PixelBox(RgbImage img, Rgb8 c)
    {
        int x0 = int.MaxValue, y0 = int.MaxValue, x1 = -1, y1 = -1;
        for (int y = 0; y < img.Height; y++)
            for (int x = 0; x < img.Width; x++)
                if (img[x, y] == c) { x0 = Math.Min(x0, x); y0 = Math.Min(y0, y); x1 = Math.Max(x1, x + 1); y1 = Math.Max(y1, y + 1); }
        return x1 < 0 ? null : [x0, y0, x1, y1];
    }

    private static void AssertBoxesFollowPixels(DetectionSample s, Rgb8[] colours, string what)
    {
        AssertValid(s, what);
        for (int i = 0; i < s.Labels.Length; i++)
        {
            var expected = PixelBox(s.Image, colours[s.Labels[i]]);
            Assert.NotNull(expected);
            Assert.True(expected.AsSpan().SequenceEqual(s.Boxes.AsSpan(4 * i, 4)),
                $"{what}: box {i} is [{string.Join(", ", s.Boxes.AsSpan(4 * i, 4).ToArray())}] but its pixels span [{string.Join(", ", expected)}]");
        }
    }

    internal static void AssertValid(DetectionSample s, string what)
    {
        Assert.Equal(s.Labels.Length * 4, s.Boxes.Length);
        for (int i = 0; i < s.Labels.Length; i++)
        {
            float x1 = s.Boxes[4 * i], y1 = s.Boxes[4 * i + 1], x2 = s.Boxes[4 * i + 2], y2 = s.Boxes[4 * i + 3];
            Assert.True(x1 >= 0 && y1 >= 0 && x2 <= s.Image.Width && y2 <= s.Image.Height && x2 > x1 && y2 > y1,
                $"{what}: box {i} [{x1}, {y1}, {x2}, {y2}] invalid in a {s.Image.Width}x{s.Image.Height} image");
        }
    }

    [Fact]
    public void Flip_rotate_and_crop_move_boxes_with_the_pixels()
    {
        for (int seed = 0; seed < 40; seed++)
        {
            var s = Marked(seed, out var colours);
            AssertBoxesFollowPixels(s, colours, $"seed {seed} original");
            AssertBoxesFollowPixels(Augment.FlipHorizontal(s), colours, $"seed {seed} flip");
            for (int k = 1; k < 4; k++) AssertBoxesFollowPixels(Augment.Rotate90(s, k), colours, $"seed {seed} rotate {k}");
            var crop = Augment.RandomCrop(s, new Random(seed));
            Assert.Equal(s.Labels, crop.Labels);                 // the crop keeps every box whole
            AssertBoxesFollowPixels(crop, colours, $"seed {seed} crop");
            var all = Augment.Apply(s, new AugmentOptions { FlipProbability = 0.5, CropProbability = 0.7, Rotate90 = true }, new Random(seed));
            AssertBoxesFollowPixels(all, colours, $"seed {seed} flip+crop+rotate");
        }
    }

    [Fact]
    public void Flip_twice_and_four_quarter_turns_are_the_identity()
    {
        var s = Marked(3, out _);
        var f = Augment.FlipHorizontal(Augment.FlipHorizontal(s));
        Assert.Equal(s.Image.Pixels, f.Image.Pixels);
        Assert.Equal(s.Boxes, f.Boxes);
        var r = Augment.Rotate90(s, 4);
        Assert.Equal(s.Image.Pixels, r.Image.Pixels);
        var r2 = Augment.Rotate90(Augment.Rotate90(s, 1), 3);
        Assert.Equal(s.Image.Pixels, r2.Image.Pixels);
        Assert.Equal(s.Boxes, r2.Boxes);
        var q = Augment.Rotate90(s, 1);
        Assert.Equal((s.Image.Height, s.Image.Width), (q.Image.Width, q.Image.Height));
    }

    [Fact]
    public void Explicit_crop_clips_and_drops_boxes_outside_the_window()
    {
        var img = new RgbImage(20, 20);
        var s = new DetectionSample(img, [0, 0, 5, 5, 8, 8, 16, 16], [0, 1], 1, "x");
        var c = Augment.Crop(s, 6, 6, 10, 10);
        Assert.Equal(new[] { 1 }, c.Labels);
        Assert.Equal(new float[] { 2, 2, 10, 10 }, c.Boxes);
        Assert.Throws<ArgumentOutOfRangeException>(() => Augment.Crop(s, 15, 0, 10, 5));
    }

    [Fact]
    public void Resize_jitter_follows_odtk_sizes_and_scales_boxes()
    {
        var rng = new Random(5);
        for (int t = 0; t < 30; t++)
        {
            var s = Marked(t, out _);
            int size = rng.Next(20, 200);
            var r = Augment.ResizeShorterSide(s, size, 150);
            double ratio = (double)size / Math.Min(s.Image.Width, s.Image.Height);
            if (ratio * Math.Max(s.Image.Width, s.Image.Height) > 150) ratio = 150.0 / Math.Max(s.Image.Width, s.Image.Height);
            Assert.Equal((int)(ratio * s.Image.Width), r.Image.Width);
            Assert.Equal((int)(ratio * s.Image.Height), r.Image.Height);
            Assert.True(Math.Max(r.Image.Width, r.Image.Height) <= 150);
            AssertValid(r, $"resize {t}");
            for (int i = 0; i < r.Boxes.Length; i++)
                Assert.Equal(Math.Min(s.Boxes[i] * ratio, i % 2 == 0 ? r.Image.Width : r.Image.Height), r.Boxes[i], 1e-3);
        }
        var odtk = Augment.Apply(Marked(1, out _), AugmentOptions.Odtk, new Random(1));
        Assert.InRange(Math.Min(odtk.Image.Width, odtk.Image.Height), 640, 1024);
    }

    [Fact]
    public void Colour_jitter_keeps_geometry_and_neutral_settings_keep_pixels()
    {
        var s = Marked(2, out _);
        var before = (byte[])s.Image.Pixels.Clone();
        ColorJitter.Brightness(s.Image, 1);
        ColorJitter.Saturation(s.Image, 1);
        ColorJitter.Contrast(s.Image, 1);
        Assert.Equal(before, s.Image.Pixels);
        ColorJitter.Hue(s.Image, 0);
        Assert.True(before.Zip(s.Image.Pixels).All(p => Math.Abs(p.First - p.Second) <= 1), "hue shift 0 changes pixels by more than rounding");
        var grey = new RgbImage(4, 4, new Rgb8(90, 90, 90));
        ColorJitter.Saturation(grey, 0.2);
        ColorJitter.Hue(grey, 0.3);
        Assert.All(grey.Pixels, v => Assert.Equal(90, v));
        ColorJitter.Brightness(grey, 2);
        Assert.All(grey.Pixels, v => Assert.Equal(180, v));
        var o = new AugmentOptions { Brightness = 0.4, Contrast = 0.4, Saturation = 0.4, Hue = 0.1 };
        var a = Augment.Apply(Marked(2, out _), o, new Random(9));
        var b = Augment.Apply(Marked(2, out _), o, new Random(9));
        Assert.Equal(a.Image.Pixels, b.Image.Pixels);
        Assert.Equal(Marked(2, out _).Boxes, a.Boxes);
        Assert.Throws<ArgumentException>(() => Augment.Apply(Marked(2, out _), new AugmentOptions { Hue = 0.7 }, new Random(1)));
    }
}

public class CollateTests
{
    [Fact]
    public void Collate_resizes_pads_and_moves_boxes_as_torchvision_transform()
    {
        var a = AugmentTests.Marked(1, out _);
        var b = AugmentTests.Marked(2, out _);
        var pre = new Osprey.Vision.Transforms.Preprocessor(new Osprey.Vision.Transforms.ResizePolicy(Osprey.Vision.Transforms.ResizeKind.Torchvision, 100, 160, 32),
            Osprey.Vision.Transforms.Normalization.ImageNet, Osprey.Core.Tensors.Device.Cpu);
        using var batch = TrainingBatch.Collate([a, b], pre);
        var x = batch.Images.Images;
        Assert.Equal(2, x.Shape[0]);
        Assert.Equal(0, x.Shape[2] % 32);
        Assert.Equal(0, x.Shape[3] % 32);
        foreach (var (s, i) in new[] { (a, 0), (b, 1) })
        {
            var (rh, rw) = batch.Images.Resized[i];
            Assert.Equal(100, Math.Min(rh, rw));
            var t = batch.Targets[i];
            Assert.Equal(s.Labels, t.Labels);
            for (int k = 0; k < t.Boxes.Length; k++)
                Assert.Equal(s.Boxes[k] * (k % 2 == 0 ? (float)rw / s.Image.Width : (float)rh / s.Image.Height), t.Boxes[k]);
        }
    }
}
