using Osprey.Vision.Imaging;

namespace Osprey.Detection.Training.Data;

/// <summary>torchvision's RandomIoUCrop (references/detection/transforms.py, SSD's crop) and the box rule it uses.</summary>
public static partial class Augment
{
    /// <summary>The minimum-IoU options of RandomIoUCrop; 1.0 leaves the image unchanged.</summary>
    private static readonly double[] IouCropOverlaps = [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0];

    /// <summary>
    /// torchvision RandomIoUCrop with its defaults: draw a minimum IoU from {0, 0.1, 0.3, 0.5, 0.7, 0.9, 1} (1: no crop); then
    /// up to 40 trials of a window with sides int(side x U(0.3, 1)), aspect ratio in [0.5, 2], at a uniform position; a trial
    /// is accepted when some box's centre lies strictly inside the window and the best IoU of those boxes with the window is
    /// at least the drawn minimum; else a new minimum is drawn. The accepted window is applied by
    /// <see cref="CropKeepingCentres"/>. An image without boxes is never cut (as torchvision, which needs a box inside).
    /// </summary>
    public static DetectionSample IouCrop(DetectionSample s, Random rng)
    {
        ArgumentNullException.ThrowIfNull(s);
        ArgumentNullException.ThrowIfNull(rng);
        int w = s.Image.Width, h = s.Image.Height;
        // torchvision loops until a window is accepted or 1.0 is drawn (probability 1/7 per draw); 1000 draws bound it
        for (int draw = 0; draw < 1000; draw++)
        {
            double minIou = IouCropOverlaps[rng.Next(IouCropOverlaps.Length)];
            if (minIou >= 1.0 || s.Labels.Length == 0) return s;
            for (int trial = 0; trial < 40; trial++)
            {
                int cw = (int)(w * (0.3 + 0.7 * rng.NextDouble())), ch = (int)(h * (0.3 + 0.7 * rng.NextDouble()));
                if (cw == 0 || ch == 0) continue;
                double aspect = (double)cw / ch;
                if (aspect is < 0.5 or > 2.0) continue;
                int left = (int)((w - cw) * rng.NextDouble()), top = (int)((h - ch) * rng.NextDouble());
                double best = -1;
                for (int i = 0; i < s.Labels.Length; i++)
                {
                    if (!CentreInside(s.Boxes, i, left, top, cw, ch)) continue;
                    best = Math.Max(best, IouWithWindow(s.Boxes, i, left, top, cw, ch));
                }
                if (best < 0 || best < minIou) continue;
                return CropKeepingCentres(s, left, top, cw, ch);
            }
        }
        return s;
    }

    /// <summary>
    /// Cuts the window [x, x + w) x [y, y + h) and keeps the boxes whose centre lies strictly inside it (torchvision
    /// RandomIoUCrop's rule), shifted and clipped to the window. A kept box whose clipped width or height falls below
    /// min(1 pixel, its original side) is dropped as too small (torchvision's SanitizeBoundingBoxes, min_size 1; with the centre
    /// inside, a clipped side keeps at least half the original side, so this only bites for boxes under 2 pixels).
    /// </summary>
    public static DetectionSample CropKeepingCentres(DetectionSample s, int x, int y, int w, int h)
    {
        ArgumentNullException.ThrowIfNull(s);
        var src = s.Image;
        if (x < 0 || y < 0 || w <= 0 || h <= 0 || x + w > src.Width || y + h > src.Height)
            throw new ArgumentOutOfRangeException(nameof(x), $"crop: window {x},{y} {w}x{h} outside the {src.Width}x{src.Height} image");
        var dst = new RgbImage(w, h);
        for (int r = 0; r < h; r++) src.Row(y + r).Slice(3 * x, 3 * w).CopyTo(dst.Row(r));
        var boxes = new List<float>(s.Boxes.Length);
        var labels = new List<int>(s.Labels.Length);
        for (int i = 0; i < s.Labels.Length; i++)
        {
            if (!CentreInside(s.Boxes, i, x, y, w, h)) continue;
            float x1 = Math.Clamp(s.Boxes[4 * i] - x, 0, w), y1 = Math.Clamp(s.Boxes[4 * i + 1] - y, 0, h);
            float x2 = Math.Clamp(s.Boxes[4 * i + 2] - x, 0, w), y2 = Math.Clamp(s.Boxes[4 * i + 3] - y, 0, h);
            float ow = s.Boxes[4 * i + 2] - s.Boxes[4 * i], oh = s.Boxes[4 * i + 3] - s.Boxes[4 * i + 1];
            if (x2 - x1 < Math.Min(1f, ow) || y2 - y1 < Math.Min(1f, oh) || !(x2 > x1) || !(y2 > y1)) continue;
            boxes.AddRange([x1, y1, x2, y2]);
            labels.Add(s.Labels[i]);
        }
        return s with { Image = dst, Boxes = boxes.ToArray(), Labels = labels.ToArray() };
    }

    private static bool CentreInside(float[] b, int i, int x, int y, int w, int h)
    {
        float cx = 0.5f * (b[4 * i] + b[4 * i + 2]), cy = 0.5f * (b[4 * i + 1] + b[4 * i + 3]);
        return x < cx && cx < x + w && y < cy && cy < y + h;
    }

    private static double IouWithWindow(float[] b, int i, int x, int y, int w, int h)
    {
        double ix = Math.Max(0, Math.Min(b[4 * i + 2], x + w) - Math.Max(b[4 * i], x));
        double iy = Math.Max(0, Math.Min(b[4 * i + 3], y + h) - Math.Max(b[4 * i + 1], y));
        double inter = ix * iy, area = (double)(b[4 * i + 2] - b[4 * i]) * (b[4 * i + 3] - b[4 * i + 1]);
        return inter / (area + (double)w * h - inter);
    }
}
