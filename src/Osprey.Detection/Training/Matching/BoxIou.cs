namespace Osprey.Detection.Training.Matching;

/// <summary>torchvision's <c>box_iou</c>: the IoU of every pair of two box sets (x1, y1, x2, y2), in float32 with its
/// operation order, so matching thresholds decide exactly as torchvision does.</summary>
public static class BoxIou
{
    /// <summary>Writes iou[i * m + j] = IoU(a_i, b_j) for n boxes <paramref name="a"/> and m boxes <paramref name="b"/>.</summary>
    public static void Matrix(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> iou)
    {
        if (a.Length % 4 != 0 || b.Length % 4 != 0)
            throw new ArgumentException($"box_iou: box arrays of {a.Length} and {b.Length} floats (need multiples of 4)");
        int n = a.Length / 4, m = b.Length / 4;
        if (iou.Length != (long)n * m)
            throw new ArgumentException($"box_iou: output holds {iou.Length} floats, {n} x {m} boxes need {(long)n * m}");
        for (int i = 0; i < n; i++)
        {
            float ax1 = a[4 * i], ay1 = a[4 * i + 1], ax2 = a[4 * i + 2], ay2 = a[4 * i + 3];
            float areaA = (ax2 - ax1) * (ay2 - ay1);
            var row = iou.Slice(i * m, m);
            for (int j = 0; j < m; j++)
            {
                float bx1 = b[4 * j], by1 = b[4 * j + 1], bx2 = b[4 * j + 2], by2 = b[4 * j + 3];
                float areaB = (bx2 - bx1) * (by2 - by1);
                float w = MathF.Max(MathF.Min(ax2, bx2) - MathF.Max(ax1, bx1), 0f);
                float h = MathF.Max(MathF.Min(ay2, by2) - MathF.Max(ay1, by1), 0f);
                float inter = w * h;
                row[j] = inter / (areaA + areaB - inter);
            }
        }
    }

    public static float[] Matrix(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        var iou = new float[(long)(a.Length / 4) * (b.Length / 4)];
        Matrix(a, b, iou);
        return iou;
    }
}
