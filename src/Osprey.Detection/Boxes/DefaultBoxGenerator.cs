namespace Osprey.Detection.Boxes;

/// <summary>
/// SSD default boxes as torchvision 0.14's <c>DefaultBoxGenerator</c>: per level, the (w, h) pairs
/// (s_k, s_k), (s'_k, s'_k) and (s_k sqrt(ar), s_k / sqrt(ar)), (s_k / sqrt(ar), s_k sqrt(ar)) per aspect
/// ratio, clipped to [0, 1], centred at ((x + 0.5) / (W / step), (y + 0.5) / (H / step)); then scaled to
/// x1, y1, x2, y2 in input pixels.
/// </summary>
public sealed class DefaultBoxGenerator
{
    private readonly float[][] _wh;
    private readonly int[]? _steps;

    public DefaultBoxGenerator(IReadOnlyList<int[]> aspectRatios, IReadOnlyList<double> scales, IReadOnlyList<int>? steps = null, bool clip = true)
    {
        ArgumentNullException.ThrowIfNull(aspectRatios);
        ArgumentNullException.ThrowIfNull(scales);
        int levels = aspectRatios.Count;
        if (scales.Count != levels + 1)
            throw new ArgumentException($"default boxes: {levels} levels need {levels + 1} scales, got {scales.Count}");
        if (steps is not null && steps.Count != levels)
            throw new ArgumentException($"default boxes: {levels} levels but {steps.Count} steps");
        _steps = steps?.ToArray();
        _wh = new float[levels][];
        for (int k = 0; k < levels; k++)
        {
            var pairs = new List<double> { scales[k], scales[k] };
            double sp = Math.Sqrt(scales[k] * scales[k + 1]);
            pairs.Add(sp);
            pairs.Add(sp);
            foreach (int ar in aspectRatios[k])
            {
                double sq = Math.Sqrt(ar);
                double w = scales[k] * sq, h = scales[k] / sq;
                pairs.Add(w); pairs.Add(h);
                pairs.Add(h); pairs.Add(w);
            }
            _wh[k] = pairs.Select(v => clip ? Math.Clamp((float)v, 0f, 1f) : (float)v).ToArray();
        }
    }

    /// <summary>torchvision's ssd300_vgg16 boxes.</summary>
    public static DefaultBoxGenerator Ssd300() => new(
        [[2], [2, 3], [2, 3], [2, 3], [2], [2]],
        [0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05],
        [8, 16, 32, 64, 100, 300]);

    public int Levels => _wh.Length;

    public int BoxesPerLocation(int level) => _wh[level].Length / 2;

    public int Count(ReadOnlySpan<ImageSize> grids)
    {
        if (grids.Length != _wh.Length)
            throw new ArgumentException($"default boxes: {grids.Length} feature levels given, configured for {_wh.Length}");
        int n = 0;
        for (int l = 0; l < grids.Length; l++) n = checked(n + grids[l].Height * grids[l].Width * BoxesPerLocation(l));
        return n;
    }

    /// <summary>Writes the boxes (x1, y1, x2, y2 in pixels of an input of size <paramref name="image"/>) of every level.</summary>
    public void Generate(ImageSize image, ReadOnlySpan<ImageSize> grids, Span<float> boxes)
    {
        int n = Count(grids);
        if (boxes.Length != n * 4)
            throw new ArgumentException($"default boxes: output holds {boxes.Length} floats, {n} boxes need {n * 4}");
        float iw = image.Width, ih = image.Height;
        int k = 0;
        for (int l = 0; l < grids.Length; l++)
        {
            var g = grids[l];
            double xf = _steps is null ? g.Width : (double)image.Width / _steps[l];
            double yf = _steps is null ? g.Height : (double)image.Height / _steps[l];
            float xff = (float)xf, yff = (float)yf;
            ReadOnlySpan<float> wh = _wh[l];
            for (int y = 0; y < g.Height; y++)
            {
                float cy = (y + 0.5f) / yff;
                for (int x = 0; x < g.Width; x++)
                {
                    float cx = (x + 0.5f) / xff;
                    for (int p = 0; p < wh.Length; p += 2)
                    {
                        float hw = 0.5f * wh[p], hh = 0.5f * wh[p + 1];
                        boxes[k++] = (cx - hw) * iw;
                        boxes[k++] = (cy - hh) * ih;
                        boxes[k++] = (cx + hw) * iw;
                        boxes[k++] = (cy + hh) * ih;
                    }
                }
            }
        }
    }

    public float[] Generate(ImageSize image, ReadOnlySpan<ImageSize> grids)
    {
        var b = new float[Count(grids) * 4];
        Generate(image, grids, b);
        return b;
    }
}
