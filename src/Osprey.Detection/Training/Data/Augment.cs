using Osprey.Vision.Imaging;

namespace Osprey.Detection.Training.Data;

/// <summary>
/// Training augmentation settings. Applied in ODTK's order: resize jitter, crop, rotation, flip, colour. Zero/false disables
/// a step. <see cref="Odtk"/> is ODTK's default training transform (--jitter 640 1024, max size 1333, flip).
/// </summary>
public sealed record AugmentOptions
{
    /// <summary>Shorter side drawn uniformly from [JitterMin, JitterMax] (integers, as random.randint); 0 disables resizing.</summary>
    public int JitterMin { get; init; }
    public int JitterMax { get; init; }
    /// <summary>Longer side limit after resizing.</summary>
    public int MaxSize { get; init; } = 1333;
    public double FlipProbability { get; init; }
    /// <summary>Probability of a random crop that keeps every box whole.</summary>
    public double CropProbability { get; init; }
    /// <summary>torchvision's RandomIoUCrop on every image (`osprey train --crop`): see <see cref="Augment.IouCrop"/>.</summary>
    public bool IouCrop { get; init; }
    /// <summary>torchvision ColorJitter ranges: factors uniform in [max(0, 1 - v), 1 + v]; hue shift uniform in [-Hue, Hue] turns.</summary>
    public double Brightness { get; init; }
    public double Contrast { get; init; }
    public double Saturation { get; init; }
    public double Hue { get; init; }
    /// <summary>Rotate by a multiple of 90 degrees drawn uniformly from 0, 90, 180, 270 (ODTK --augment-rotate).</summary>
    public bool Rotate90 { get; init; }

    public static AugmentOptions None { get; } = new();

    public static AugmentOptions Odtk { get; } = new() { JitterMin = 640, JitterMax = 1024, MaxSize = 1333, FlipProbability = 0.5 };

    internal void Check()
    {
        if (JitterMin < 0 || JitterMax < JitterMin || (JitterMin > 0 && MaxSize <= 0))
            throw new ArgumentException($"augment: jitter {JitterMin}..{JitterMax} with max size {MaxSize} (need 0 <= min <= max, max size > 0)");
        if (FlipProbability is < 0 or > 1 || CropProbability is < 0 or > 1)
            throw new ArgumentException($"augment: probabilities flip {FlipProbability}, crop {CropProbability} must lie in [0, 1]");
        if (Brightness < 0 || Contrast < 0 || Saturation < 0 || Hue is < 0 or > 0.5)
            throw new ArgumentException($"augment: colour jitter {Brightness}/{Contrast}/{Saturation}/{Hue} (need >= 0, hue <= 0.5)");
    }
}

/// <summary>CPU augmentations of a decoded image and its boxes. Every transform keeps boxes inside the image with positive
/// size and moves them exactly as it moves the pixels.</summary>
public static partial class Augment
{
    /// <summary>Applies <paramref name="options"/> with random draws from <paramref name="rng"/> (deterministic for a seed).</summary>
    public static DetectionSample Apply(DetectionSample s, AugmentOptions options, Random rng)
    {
        ArgumentNullException.ThrowIfNull(s);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(rng);
        options.Check();
        if (options.JitterMin > 0)
            s = ResizeShorterSide(s, rng.Next(options.JitterMin, options.JitterMax + 1), options.MaxSize);
        if (options.CropProbability > 0 && rng.NextDouble() < options.CropProbability) s = RandomCrop(s, rng);
        if (options.IouCrop) s = IouCrop(s, rng);
        if (options.Rotate90) s = Rotate90(s, rng.Next(4));
        if (options.FlipProbability > 0 && rng.NextDouble() < options.FlipProbability) s = FlipHorizontal(s);
        if (options.Brightness > 0 || options.Contrast > 0 || options.Saturation > 0 || options.Hue > 0)
            ColorJitter.Apply(s.Image, options, rng);
        return s;
    }

    /// <summary>ODTK's resize: ratio = size / shorter side, reduced so the longer side stays within maxSize; new sides
    /// int(ratio * side); bilinear (half-pixel centres, no antialiasing); boxes scaled by the ratio and clamped to the image.</summary>
    public static DetectionSample ResizeShorterSide(DetectionSample s, int size, int maxSize)
    {
        var img = s.Image;
        double ratio = (double)size / Math.Min(img.Width, img.Height);
        if (ratio * Math.Max(img.Width, img.Height) > maxSize) ratio = (double)maxSize / Math.Max(img.Width, img.Height);
        int w = Math.Max(1, (int)(ratio * img.Width)), h = Math.Max(1, (int)(ratio * img.Height));
        var boxes = (float[])s.Boxes.Clone();
        for (int i = 0; i < boxes.Length; i += 4)
        {
            boxes[i] = Math.Min((float)(boxes[i] * ratio), w);
            boxes[i + 1] = Math.Min((float)(boxes[i + 1] * ratio), h);
            boxes[i + 2] = Math.Min((float)(boxes[i + 2] * ratio), w);
            boxes[i + 3] = Math.Min((float)(boxes[i + 3] * ratio), h);
        }
        return DropEmpty(s with { Image = ImageResize.Bilinear(img, w, h), Boxes = boxes });
    }

    /// <summary>Mirrors left-right: x becomes width - x.</summary>
    public static DetectionSample FlipHorizontal(DetectionSample s)
    {
        var src = s.Image;
        var dst = new RgbImage(src.Width, src.Height);
        for (int y = 0; y < src.Height; y++)
        {
            var a = src.Row(y);
            var b = dst.Row(y);
            for (int x = 0, r = src.Width - 1; x < src.Width; x++, r--)
            {
                b[3 * r] = a[3 * x]; b[3 * r + 1] = a[3 * x + 1]; b[3 * r + 2] = a[3 * x + 2];
            }
        }
        var boxes = (float[])s.Boxes.Clone();
        for (int i = 0; i < boxes.Length; i += 4)
        {
            boxes[i] = src.Width - s.Boxes[i + 2];
            boxes[i + 2] = src.Width - s.Boxes[i];
        }
        return s with { Image = dst, Boxes = boxes };
    }

    /// <summary>Rotates counter-clockwise by <paramref name="quarterTurns"/> x 90 degrees (PIL rotate(90 k, expand=True)).</summary>
    public static DetectionSample Rotate90(DetectionSample s, int quarterTurns)
    {
        int k = ((quarterTurns % 4) + 4) % 4;
        for (int i = 0; i < k; i++) s = RotateOnce(s);
        return s;
    }

    /// <summary>One quarter turn counter-clockwise: pixel (x, y) goes to (y, W - 1 - x); point (x, y) to (y, W - x).</summary>
    private static DetectionSample RotateOnce(DetectionSample s)
    {
        var src = s.Image;
        int w = src.Width, h = src.Height;
        var dst = new RgbImage(h, w);
        byte[] a = src.Pixels, b = dst.Pixels;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int so = (y * w + x) * 3, d = ((w - 1 - x) * h + y) * 3;
                b[d] = a[so]; b[d + 1] = a[so + 1]; b[d + 2] = a[so + 2];
            }
        var o = s.Boxes;
        var boxes = new float[o.Length];
        for (int i = 0; i < o.Length; i += 4)
        {
            boxes[i] = o[i + 1];
            boxes[i + 1] = w - o[i + 2];
            boxes[i + 2] = o[i + 3];
            boxes[i + 3] = w - o[i];
        }
        return s with { Image = dst, Boxes = boxes };
    }

    /// <summary>A random crop that contains every box whole: each side of the window is drawn between the image border and the
    /// boxes' enclosing rectangle (integer pixels). Without boxes the window covers 30-100 % of each side.</summary>
    public static DetectionSample RandomCrop(DetectionSample s, Random rng)
    {
        ArgumentNullException.ThrowIfNull(rng);
        var img = s.Image;
        int x0, y0, x1, y1;
        if (s.Labels.Length == 0)
        {
            int cw = Math.Max(1, (int)(img.Width * (0.3 + 0.7 * rng.NextDouble()))), ch = Math.Max(1, (int)(img.Height * (0.3 + 0.7 * rng.NextDouble())));
            x0 = rng.Next(img.Width - cw + 1); y0 = rng.Next(img.Height - ch + 1);
            x1 = x0 + cw; y1 = y0 + ch;
        }
        else
        {
            float bx0 = float.MaxValue, by0 = float.MaxValue, bx1 = 0, by1 = 0;
            for (int i = 0; i < s.Boxes.Length; i += 4)
            {
                bx0 = Math.Min(bx0, s.Boxes[i]); by0 = Math.Min(by0, s.Boxes[i + 1]);
                bx1 = Math.Max(bx1, s.Boxes[i + 2]); by1 = Math.Max(by1, s.Boxes[i + 3]);
            }
            x0 = rng.Next(Math.Clamp((int)MathF.Floor(bx0), 0, img.Width - 1) + 1);
            y0 = rng.Next(Math.Clamp((int)MathF.Floor(by0), 0, img.Height - 1) + 1);
            int minX1 = Math.Clamp((int)MathF.Ceiling(bx1), x0 + 1, img.Width), minY1 = Math.Clamp((int)MathF.Ceiling(by1), y0 + 1, img.Height);
            x1 = rng.Next(minX1, img.Width + 1);
            y1 = rng.Next(minY1, img.Height + 1);
        }
        return Crop(s, x0, y0, x1 - x0, y1 - y0);
    }

    /// <summary>Cuts the window [x, x + w) x [y, y + h); boxes are shifted and clipped to it, and boxes left empty are dropped.</summary>
    public static DetectionSample Crop(DetectionSample s, int x, int y, int w, int h)
    {
        var src = s.Image;
        if (x < 0 || y < 0 || w <= 0 || h <= 0 || x + w > src.Width || y + h > src.Height)
            throw new ArgumentOutOfRangeException(nameof(x), $"crop: window {x},{y} {w}x{h} outside the {src.Width}x{src.Height} image");
        var dst = new RgbImage(w, h);
        for (int r = 0; r < h; r++) src.Row(y + r).Slice(3 * x, 3 * w).CopyTo(dst.Row(r));
        var boxes = (float[])s.Boxes.Clone();
        for (int i = 0; i < boxes.Length; i += 4)
        {
            boxes[i] = Math.Clamp(boxes[i] - x, 0, w);
            boxes[i + 1] = Math.Clamp(boxes[i + 1] - y, 0, h);
            boxes[i + 2] = Math.Clamp(boxes[i + 2] - x, 0, w);
            boxes[i + 3] = Math.Clamp(boxes[i + 3] - y, 0, h);
        }
        return DropEmpty(s with { Image = dst, Boxes = boxes });
    }

    private static DetectionSample DropEmpty(DetectionSample s)
    {
        int n = s.Labels.Length, kept = 0;
        for (int i = 0; i < n; i++) if (s.Boxes[4 * i + 2] > s.Boxes[4 * i] && s.Boxes[4 * i + 3] > s.Boxes[4 * i + 1]) kept++;
        if (kept == n) return s;
        var boxes = new float[kept * 4];
        var labels = new int[kept];
        for (int i = 0, k = 0; i < n; i++)
        {
            if (!(s.Boxes[4 * i + 2] > s.Boxes[4 * i] && s.Boxes[4 * i + 3] > s.Boxes[4 * i + 1])) continue;
            s.Boxes.AsSpan(4 * i, 4).CopyTo(boxes.AsSpan(4 * k, 4));
            labels[k++] = s.Labels[i];
        }
        return s with { Boxes = boxes, Labels = labels };
    }
}
