namespace Osprey.Detection.Boxes;

/// <summary>How <see cref="Nms.Batched"/> separates classes. Both give the same boxes up to float rounding of the IoU.</summary>
public enum BatchedNmsMode
{
    /// <summary>As torchvision.ops.batched_nms on the CPU: <see cref="CoordinateOffset"/> up to 1000 boxes, <see cref="PerClass"/> above.</summary>
    Auto,
    /// <summary>Shift each class's boxes by class * (max coordinate + 1) and run one NMS.</summary>
    CoordinateOffset,
    /// <summary>Run NMS per class, then order all kept boxes by score.</summary>
    PerClass,
}

/// <summary>Reusable scratch for NMS and post-processing; grows on demand, so steady-state calls do not allocate. Not thread-safe.</summary>
public sealed class NmsWorkspace
{
    internal ulong[] Keys = [];
    internal ulong[] Keys2 = [];
    internal int[] Order = [];
    internal bool[] Suppressed = [];
    internal float[] Shifted = [];

    internal void Ensure(int n)
    {
        if (Keys.Length >= n) return;
        int c = Math.Max(n, Keys.Length * 2);
        Keys = new ulong[c];
        Keys2 = new ulong[c];
        Order = new int[c];
        Suppressed = new bool[c];
        Shifted = new float[c * 4];
    }
}

/// <summary>
/// Non-maximum suppression with torchvision's semantics: boxes are visited by score, descending, ties by lower
/// index first (torchvision's CPU kernel sorts stably); a box is dropped when its float32 IoU with a kept box
/// is greater than the threshold. Results are indices into the input, in decreasing score order.
/// </summary>
public static class Nms
{
    /// <summary>A key whose ascending order is score descending, then index ascending (NaN scores first, as torch's sort).</summary>
    internal static ulong DescendingKey(float score, int index)
    {
        uint bits = BitConverter.SingleToUInt32Bits(score);
        uint sortable = (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
        return ((ulong)~sortable << 32) | (uint)index;
    }

    /// <summary>torchvision.ops.nms. boxes holds 4 floats per box; keep must hold scores.Length; returns how many were kept.</summary>
    public static int Run(ReadOnlySpan<float> boxes, ReadOnlySpan<float> scores, double iouThreshold, Span<int> keep, NmsWorkspace workspace)
    {
        ArgumentNullException.ThrowIfNull(workspace);
        int n = Check("nms", boxes, scores, keep);
        workspace.Ensure(n);
        var keys = workspace.Keys.AsSpan(0, n);
        for (int i = 0; i < n; i++) keys[i] = DescendingKey(scores[i], i);
        keys.Sort();
        var order = workspace.Order.AsSpan(0, n);
        for (int i = 0; i < n; i++) order[i] = (int)(uint)keys[i];
        return Suppress(boxes, order, iouThreshold, keep, workspace.Suppressed);
    }

    public static int[] Run(ReadOnlySpan<float> boxes, ReadOnlySpan<float> scores, double iouThreshold)
    {
        var keep = new int[scores.Length];
        int k = Run(boxes, scores, iouThreshold, keep, new NmsWorkspace());
        return keep[..k];
    }

    /// <summary>
    /// torchvision.ops.batched_nms: NMS never suppresses across classes. Returns indices in decreasing score
    /// order (equal scores by lower index).
    /// </summary>
    public static int Batched(ReadOnlySpan<float> boxes, ReadOnlySpan<float> scores, ReadOnlySpan<int> classes, double iouThreshold,
        Span<int> keep, NmsWorkspace workspace, BatchedNmsMode mode = BatchedNmsMode.Auto)
    {
        ArgumentNullException.ThrowIfNull(workspace);
        int n = Check("batched_nms", boxes, scores, keep);
        if (classes.Length != n) throw new ArgumentException($"batched_nms: {n} scores but {classes.Length} class ids");
        if (n == 0) return 0;
        if (mode == BatchedNmsMode.Auto) mode = n * 4 > 4000 ? BatchedNmsMode.PerClass : BatchedNmsMode.CoordinateOffset;
        return mode == BatchedNmsMode.CoordinateOffset
            ? OffsetNms(boxes, scores, classes, iouThreshold, keep, workspace)
            : PerClassNms(boxes, scores, classes, iouThreshold, keep, workspace);
    }

    public static int[] Batched(ReadOnlySpan<float> boxes, ReadOnlySpan<float> scores, ReadOnlySpan<int> classes, double iouThreshold,
        BatchedNmsMode mode = BatchedNmsMode.Auto)
    {
        var keep = new int[scores.Length];
        int k = Batched(boxes, scores, classes, iouThreshold, keep, new NmsWorkspace(), mode);
        return keep[..k];
    }

    private static int OffsetNms(ReadOnlySpan<float> boxes, ReadOnlySpan<float> scores, ReadOnlySpan<int> classes, double iou,
        Span<int> keep, NmsWorkspace ws)
    {
        int n = scores.Length;
        ws.Ensure(n);
        float max = float.NegativeInfinity;
        foreach (float v in boxes) max = float.IsNaN(v) || v > max ? v : max;  // torch's max propagates NaN
        float step = max + 1f;
        var shifted = ws.Shifted.AsSpan(0, n * 4);
        for (int i = 0; i < n; i++)
        {
            float off = classes[i] * step;
            for (int c = 0; c < 4; c++) shifted[i * 4 + c] = boxes[i * 4 + c] + off;
        }
        return Run(shifted, scores, iou, keep, ws);
    }

    private static int PerClassNms(ReadOnlySpan<float> boxes, ReadOnlySpan<float> scores, ReadOnlySpan<int> classes, double iou,
        Span<int> keep, NmsWorkspace ws)
    {
        int n = scores.Length;
        ws.Ensure(n);
        // rank every box by score, then group the ranks by class (the sort keeps score order inside a class)
        var keys = ws.Keys.AsSpan(0, n);
        for (int i = 0; i < n; i++) keys[i] = DescendingKey(scores[i], i);
        keys.Sort();
        var byClass = ws.Keys2.AsSpan(0, n);
        for (int r = 0; r < n; r++)
        {
            int i = (int)(uint)keys[r];
            byClass[r] = ((ulong)((uint)classes[i] ^ 0x80000000u) << 32) | (uint)r;
        }
        byClass.Sort();
        var order = ws.Order.AsSpan(0, n);
        for (int r = 0; r < n; r++) order[r] = (int)(uint)keys[(int)(uint)byClass[r]];
        int kept = 0;
        for (int start = 0; start < n;)
        {
            uint cls = (uint)(byClass[start] >> 32);
            int end = start + 1;
            while (end < n && (uint)(byClass[end] >> 32) == cls) end++;
            kept += Suppress(boxes, order[start..end], iou, keep[kept..], ws.Suppressed);
            start = end;
        }
        // all kept boxes by score, descending (equal scores by lower index)
        var final = ws.Keys2.AsSpan(0, kept);
        for (int i = 0; i < kept; i++) final[i] = DescendingKey(scores[keep[i]], keep[i]);
        final.Sort();
        for (int i = 0; i < kept; i++) keep[i] = (int)(uint)final[i];
        return kept;
    }

    /// <summary>Greedy suppression over boxes visited in <paramref name="order"/>; writes kept indices, returns their count.</summary>
    private static int Suppress(ReadOnlySpan<float> boxes, ReadOnlySpan<int> order, double iou, Span<int> keep, bool[] suppressedBuffer)
    {
        int n = order.Length;
        var suppressed = suppressedBuffer.AsSpan(0, n);
        suppressed.Clear();
        int kept = 0;
        for (int a = 0; a < n; a++)
        {
            if (suppressed[a]) continue;
            int i = order[a];
            keep[kept++] = i;
            float x1 = boxes[i * 4], y1 = boxes[i * 4 + 1], x2 = boxes[i * 4 + 2], y2 = boxes[i * 4 + 3];
            float area = (x2 - x1) * (y2 - y1);
            for (int b = a + 1; b < n; b++)
            {
                if (suppressed[b]) continue;
                int j = order[b];
                float jx1 = boxes[j * 4], jy1 = boxes[j * 4 + 1], jx2 = boxes[j * 4 + 2], jy2 = boxes[j * 4 + 3];
                float w = MathF.Max(0f, MathF.Min(x2, jx2) - MathF.Max(x1, jx1));
                float h = MathF.Max(0f, MathF.Min(y2, jy2) - MathF.Max(y1, jy1));
                float inter = w * h;
                float ovr = inter / (area + (jx2 - jx1) * (jy2 - jy1) - inter);
                if (ovr > iou) suppressed[b] = true;
            }
        }
        return kept;
    }

    private static int Check(string op, ReadOnlySpan<float> boxes, ReadOnlySpan<float> scores, Span<int> keep)
    {
        int n = scores.Length;
        if (boxes.Length != n * 4) throw new ArgumentException($"{op}: {n} scores need {n * 4} box floats, got {boxes.Length}");
        if (keep.Length < n) throw new ArgumentException($"{op}: keep holds {keep.Length} indices, {n} may be kept");
        return n;
    }
}
