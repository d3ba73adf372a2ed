using Osprey.Detection.Training.Data;
using Osprey.Detection.Training.Loop;
using Osprey.Vision.Imaging;

namespace Osprey.Tests.Training;

/// <summary>The training loop's augmentations: box geometry against hand-computed cases, and against the pixels (a box drawn on
/// the image stays over the drawn object after each transform and after all of them together).</summary>
public class AugmentGeometryTests
{
    private static DetectionSample One(int w, int h, float[] boxes) =>
        new(new RgbImage(w, h), boxes, Enumerable.Range(0, boxes.Length / 4).ToArray(), 1, "hand");

    [Fact]
    public void Flip_and_quarter_turns_match_hand_computed_boxes()
    {
        // a 10 x 6 image, box x 1..4, y 2..5
        var s = One(10, 6, [1, 2, 4, 5]);
        Assert.Equal(new float[] { 6, 2, 9, 5 }, Augment.FlipHorizontal(s).Boxes);             // x -> 10 - x
        var r1 = Augment.Rotate90(s, 1);                                                       // counter-clockwise: (x, y) -> (y, W - x)
        Assert.Equal((6, 10), (r1.Image.Width, r1.Image.Height));
        Assert.Equal(new float[] { 2, 6, 5, 9 }, r1.Boxes);
        Assert.Equal(new float[] { 6, 1, 9, 4 }, Augment.Rotate90(s, 2).Boxes);               // (x, y) -> (W - x, H - y)
        Assert.Equal(new float[] { 1, 1, 4, 4 }, Augment.Rotate90(s, 3).Boxes);               // clockwise: (x, y) -> (H - y, x)
        Assert.Equal(new float[] { 1, 1, 4, 4 }, Augment.Rotate90(s, -1).Boxes);
    }

    [Fact]
    public void Odtk_resize_matches_hand_computed_sizes_and_boxes()
    {
        // 100 x 50 to shorter side 64: ratio 1.28 -> 128 x 64, box scaled by 1.28
        var r = Augment.ResizeShorterSide(One(100, 50, [10, 10, 20, 20]), 64, 1333);
        Assert.Equal((128, 64), (r.Image.Width, r.Image.Height));
        Assert.Equal(new float[] { 12.8f, 12.8f, 25.6f, 25.6f }, r.Boxes);
        // the longer side capped at 150: ratio 1.5 -> 150 x 75
        var c = Augment.ResizeShorterSide(One(100, 50, [90, 0, 100, 50]), 100, 150);
        Assert.Equal((150, 75), (c.Image.Width, c.Image.Height));
        Assert.Equal(new float[] { 135, 0, 150, 75 }, c.Boxes);
    }

    [Fact]
    public void Iou_crop_keeps_boxes_whose_centre_is_inside_clipped_and_drops_the_rest()
    {
        // window x 6..16, y 6..16 of a 20 x 20 image
        var s = One(20, 20, [
            0, 0, 5, 5,        // centre (2.5, 2.5) outside: dropped
            8, 8, 16, 16,      // inside: shifted to 2..10
            4, 4, 9, 9,        // centre (6.5, 6.5) inside: clipped to 0..3
            5.8f, 10, 6.6f, 12, // centre x 6.2 inside, but clipped to 0.6 px wide (< min(1, 0.8)): dropped as too small
            2, 8, 11, 9.5f,    // centre (6.5, 8.75): clipped to x 0..5, y 2..3.5
            14, 14, 30, 30,    // centre (22, 22) outside (past the image, too)
        ]);
        var c = Augment.CropKeepingCentres(s, 6, 6, 10, 10);
        Assert.Equal((10, 10), (c.Image.Width, c.Image.Height));
        Assert.Equal(new[] { 1, 2, 4 }, c.Labels);
        Assert.Equal(new float[] { 2, 2, 10, 10, 0, 0, 3, 3, 0, 2, 5, 3.5f }, c.Boxes);
        Assert.Throws<ArgumentOutOfRangeException>(() => Augment.CropKeepingCentres(s, 12, 0, 10, 5));
    }

    [Fact]
    public void Iou_crop_windows_follow_torchvision_limits_and_boxes_follow_pixels()
    {
        int cropped = 0, unchanged = 0;
        for (int seed = 0; seed < 60; seed++)
        {
            var s = AugmentTests.Marked(seed, out var colours);
            var c = Augment.IouCrop(s, new Random(seed));
            if (ReferenceEquals(c, s)) { unchanged++; continue; }
            cropped++;
            int w = c.Image.Width, h = c.Image.Height;
            Assert.InRange(w, (int)(0.3 * s.Image.Width), s.Image.Width);
            Assert.InRange(h, (int)(0.3 * s.Image.Height), s.Image.Height);
            Assert.InRange((double)w / h, 0.5, 2.0);
            Assert.NotEmpty(c.Labels);                                   // a window is accepted only with a box centre inside
            AssertBoxesOverPixels(c, colours, 0, $"seed {seed} iou crop");
        }
        Assert.True(cropped > 20 && unchanged > 0, $"{cropped} cropped, {unchanged} left whole (the 1.0 option)");
        var empty = new DetectionSample(new RgbImage(30, 30), [], [], 1, "empty");
        Assert.Same(empty, Augment.IouCrop(empty, new Random(1)));
    }

    [Fact]
    public void All_augmentations_together_keep_boxes_over_the_drawn_objects()
    {
        // jitter only enlarges here (shorter sides are under 90), so every object keeps pixels of its exact colour
        var o = new AugmentOptions { JitterMin = 90, JitterMax = 140, MaxSize = 300, IouCrop = true, Rotate90 = true, FlipProbability = 0.5 };
        for (int seed = 0; seed < 40; seed++)
        {
            var s = AugmentTests.Marked(seed, out var colours);
            var a = Augment.Apply(s, o, new Random(seed));
            // bilinear resizing blurs the edges (a blend of two neighbouring objects can hit one's exact colour next to it): the
            // pixels of a box's colour lie within the box and the box within those pixels, either widened by the scale + 1 pixel
            double scale = Math.Max(a.Image.Width, a.Image.Height) / (double)Math.Max(s.Image.Width, s.Image.Height);
            AssertBoxesOverPixels(a, colours, Math.Max(scale, 1 / scale) + 1, $"seed {seed} all");
        }
    }

    [Fact]
    public void Colour_jitter_moves_no_box_and_matches_hand_computed_pixels()
    {
        var img = new RgbImage(2, 1);
        img[0, 0] = new Rgb8(100, 50, 200);
        img[1, 0] = new Rgb8(0, 0, 0);
        ColorJitter.Brightness(img, 1.5);
        Assert.Equal(new Rgb8(150, 75, 255), img[0, 0]);                // 300 clipped to 255
        // contrast 0.5 around the mean grey (0.2989 * 150 + 0.587 * 75 + 0.114 * 255 + 0) / 2 = 58.965: v * 0.5 + 29.4825
        ColorJitter.Contrast(img, 0.5);
        Assert.Equal(new Rgb8(104, 67, 157), img[0, 0]);
        Assert.Equal(new Rgb8(29, 29, 29), img[1, 0]);
        var s = AugmentTests.Marked(4, out _);
        var o = new AugmentOptions { Brightness = 0.5, Contrast = 0.5, Saturation = 0.5, Hue = 0.2 };
        var a = Augment.Apply(s, o, new Random(2));
        Assert.Equal(s.Boxes, a.Boxes);
        Assert.NotEqual(AugmentTests.Marked(4, out _).Image.Pixels, a.Image.Pixels);
    }

    [Fact]
    public void Train_options_map_to_the_augmentation_and_bad_values_name_the_option()
    {
        var o = new TrainOptions
        {
            Architecture = "retinanet_resnet18_fpn", JitterMin = 64, JitterMax = 96, MaxSize = 128, Resize = 80, FlipProbability = 0.25,
            Crop = true, Rotate90 = true, Color = new ColorRanges(0.1, 0.2, 0.3, 0.05),
        };
        o.Validate();
        var a = TrainAugmentation.For(o);
        Assert.Equal((64, 96, 128, 0.25, true, true), (a.JitterMin, a.JitterMax, a.MaxSize, a.FlipProbability, a.IouCrop, a.Rotate90));
        Assert.Equal((0.1, 0.2, 0.3, 0.05), (a.Brightness, a.Contrast, a.Saturation, a.Hue));
        Assert.Equal(Osprey.Vision.Transforms.ResizeKind.Keep, TrainAugmentation.NetworkResize(o).Kind);
        Assert.Equal(80, TrainAugmentation.NetworkResize(o with { JitterMin = 0, JitterMax = 0 }).MinSize);
        Assert.Contains("--flip", Assert.Throws<ArgumentException>(() => (o with { FlipProbability = 1.5 }).Validate()).Message);
        Assert.Contains("--flip", Assert.Throws<ArgumentException>(() => (o with { FlipProbability = double.NaN }).Validate()).Message);
        Assert.Contains("--color", Assert.Throws<ArgumentException>(() => (o with { Color = new ColorRanges(-0.1, 0, 0, 0) }).Validate()).Message);
        Assert.Contains("hue in [0, 0.5]", Assert.Throws<ArgumentException>(() => (o with { Color = new ColorRanges(0, 0, 0, 0.6) }).Validate()).Message);
        Assert.Contains("--color", Assert.Throws<ArgumentException>(() => (o with { Color = new ColorRanges(0, double.PositiveInfinity, 0, 0) }).Validate()).Message);
    }

    /// <summary>Every box covers the pixels of its object's colour and lies within them, both up to <paramref name="slack"/> pixels.</summary>
    private static void AssertBoxesOverPixels(DetectionSample s, Rgb8[] colours, double slack, string what)
    {
        AugmentTests.AssertValid(s, what);
        for (int i = 0; i < s.Labels.Length; i++)
        {
            var c = colours[s.Labels[i]];
            int x0 = int.MaxValue, y0 = int.MaxValue, x1 = -1, y1 = -1;
            for (int y = 0; y < s.Image.Height; y++)
                for (int x = 0; x < s.Image.Width; x++)
                    if (s.Image[x, y] == c) { x0 = Math.Min(x0, x); y0 = Math.Min(y0, y); x1 = Math.Max(x1, x + 1); y1 = Math.Max(y1, y + 1); }
            var b = s.Boxes.AsSpan(4 * i, 4).ToArray();
            string where = $"{what}: box {i} [{string.Join(", ", b)}], pixels of its colour [{x0}, {y0}, {x1}, {y1}]";
            Assert.True(x1 >= 0, $"{where}: the object is gone");
            Assert.True(x0 >= b[0] - slack && y0 >= b[1] - slack && x1 <= b[2] + slack && y1 <= b[3] + slack, where);
            Assert.True(b[0] >= x0 - slack && b[1] >= y0 - slack && b[2] <= x1 + slack && b[3] <= y1 + slack, where);
        }
    }
}
