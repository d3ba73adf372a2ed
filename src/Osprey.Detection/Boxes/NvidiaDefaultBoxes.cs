namespace Osprey.Detection.Boxes;

/// <summary>
/// NVIDIA DeepLearningExamples SSD300 v1.1 default boxes (ssd/utils.py dboxes300_coco): 8732 boxes as (cx, cy, w, h)
/// relative to the 300x300 input, clamped to [0, 1]. Per level (grids 38, 19, 10, 5, 3, 1; steps 8, 16, 32, 64, 100,
/// 300; scales 21, 45, 99, 153, 207, 261, 315): the sizes (s_k, s_k), (sqrt(s_k s_k+1), same), then (s_k sqrt(a),
/// s_k / sqrt(a)) and its transpose per aspect ratio a; for each size, every location row-major with centre
/// ((j + 0.5) / fk, (i + 0.5) / fk), fk = 300 / step. Values are computed in double and rounded to float32, as DLE's
/// Python lists become a float tensor. This size-major order is the order of <c>bbox_view</c>'s flattened head outputs.
/// </summary>
public static class NvidiaDefaultBoxes
{
    private static readonly int[] s_grids = [38, 19, 10, 5, 3, 1];
    private static readonly int[] s_steps = [8, 16, 32, 64, 100, 300];
    private static readonly int[] s_scales = [21, 45, 99, 153, 207, 261, 315];
    private static readonly int[][] s_ratios = [[2], [2, 3], [2, 3], [2, 3], [2], [2]];

    /// <summary>Boxes per location of each level: 4, 6, 6, 6, 4, 4.</summary>
    public static int BoxesPerLocation(int level) => 2 + 2 * s_ratios[level].Length;

    /// <summary>The grid sizes the boxes are laid out for.</summary>
    public static IReadOnlyList<int> Grids => s_grids;

    /// <summary>The 8732 boxes, 4 floats (cx, cy, w, h) each.</summary>
    public static float[] Generate()
    {
        var boxes = new List<float>(8732 * 4);
        const double Fig = 300;
        for (int l = 0; l < s_grids.Length; l++)
        {
            double fk = Fig / s_steps[l];
            double sk1 = s_scales[l] / Fig, sk2 = s_scales[l + 1] / Fig, sk3 = Math.Sqrt(sk1 * sk2);
            var sizes = new List<(double W, double H)> { (sk1, sk1), (sk3, sk3) };
            foreach (int a in s_ratios[l])
            {
                double w = sk1 * Math.Sqrt(a), h = sk1 / Math.Sqrt(a);
                sizes.Add((w, h));
                sizes.Add((h, w));
            }
            foreach (var (w, h) in sizes)
                for (int i = 0; i < s_grids[l]; i++)
                    for (int j = 0; j < s_grids[l]; j++)
                    {
                        boxes.Add(Clamp01((j + 0.5) / fk));
                        boxes.Add(Clamp01((i + 0.5) / fk));
                        boxes.Add(Clamp01(w));
                        boxes.Add(Clamp01(h));
                    }
        }
        return [.. boxes];
    }

    private static float Clamp01(double v) => Math.Clamp((float)v, 0f, 1f);

    /// <summary>Checks that head outputs were computed on DLE's grids (a 300x300 input).</summary>
    public static void CheckGrids(ReadOnlySpan<ImageSize> grids)
    {
        bool ok = grids.Length == s_grids.Length;
        for (int l = 0; ok && l < grids.Length; l++) ok = grids[l].Height == s_grids[l] && grids[l].Width == s_grids[l];
        if (!ok)
            throw new ArgumentException($"ssd300_resnet50 default boxes: feature grids {string.Join(", ", grids.ToArray())} are not 38, 19, 10, 5, 3, 1 (the input must be 300x300)");
    }
}
