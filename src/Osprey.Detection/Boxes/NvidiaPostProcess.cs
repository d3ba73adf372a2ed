namespace Osprey.Detection.Boxes;

/// <summary>
/// NVIDIA ODTK's RetinaNet inference post-processing for one image, as `odtk infer` runs it (csrc/cuda/decode.cu and
/// nms.cu; odtk/box.py's delta2box arithmetic):
/// per level, sigmoid scores strictly above the threshold, the best <see cref="PostProcessOptions.CandidatesPerLevel"/>
/// of them (score descending, ties by ODTK's flat index ((a * K + c) * H + y) * W + x, as its stable radix sort),
/// decoded with <see cref="BoxCoder.Odtk"/> and clamped to [0, grid * stride - 1] of the padded input; then over all
/// levels a stable score sort and greedy class-aware NMS with ODTK's +1 pixel areas (a box goes when its overlap with
/// a better box of its class is strictly above the threshold), and the best detections.
/// Output corners are ODTK's inclusive pixels on the padded input (x2 - x1 + 1 is the width).
/// </summary>
public sealed class OdtkPostProcessor(PostProcessOptions options) : PostProcessorBase(options)
{
    public BoxCoder Coder { get; } = BoxCoder.Odtk;

    /// <param name="logits">[anchors, classes] over all levels (level, row, column, anchor), before the sigmoid.</param>
    /// <param name="regression">[anchors, 4].</param>
    /// <param name="anchors">[anchors, 4] from <see cref="OdtkAnchors.Generate"/>.</param>
    /// <param name="grids">Feature grid of each level.</param>
    /// <param name="anchorsPerLocation">9 for ODTK's defaults.</param>
    /// <param name="input">The padded network input size.</param>
    public void Run(ReadOnlySpan<float> logits, ReadOnlySpan<float> regression, ReadOnlySpan<float> anchors, ReadOnlySpan<ImageSize> grids,
        int anchorsPerLocation, int classes, ImageSize input, List<DetectedObject> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        long total = 0;
        foreach (var g in grids) total += (long)g.Height * g.Width * anchorsPerLocation;
        if (classes <= 0 || anchorsPerLocation <= 0 || logits.Length != total * classes || regression.Length != total * 4 || anchors.Length != total * 4)
            throw new ArgumentException($"odtk postprocess: {total} anchors x {classes} classes need {total * classes} logits and {total * 4} regression/anchor floats; got {logits.Length}, {regression.Length}, {anchors.Length}");
        float thr = Options.ScoreThreshold;
        float logitFloor = thr <= 0 ? float.NegativeInfinity : MathF.Log(thr / (1 - thr)) - 1e-3f;
        Count = 0;
        int first = 0;
        Span<float> box = stackalloc float[4];
        foreach (var g in grids)
        {
            int h = g.Height, w = g.Width, a = anchorsPerLocation;
            int stride = OdtkAnchors.Stride(input, g);
            float maxX = w * stride - 1, maxY = h * stride - 1;
            int levelAnchors = h * w * a;
            var lvl = logits.Slice(first * classes, levelAnchors * classes);
            var keys = TopKeyBuffer(lvl.Length);
            int n = 0;
            for (int i = 0; i < lvl.Length; i++)
            {
                float x = lvl[i];
                if (!(x > logitFloor)) continue;
                float s = Sigmoid(x);
                if (!(s > thr)) continue;
                // Osprey index i = ((y * W + x) * A + a) * K + c  ->  ODTK index ((a * K + c) * H + y) * W + x
                int c = i % classes, rest = i / classes, an = rest % a, loc = rest / a;
                keys[n++] = Nms.DescendingKey(s, ((an * classes + c) * h + loc / w) * w + loc % w);
            }
            var cand = keys[..n];
            int k = Math.Min(n, Options.CandidatesPerLevel);
            if (k < n) RetinaNetPostProcessor.SelectTop(cand, k);
            cand = cand[..k];
            cand.Sort();
            Reserve(k);
            foreach (ulong key in cand)
            {
                int odtk = (int)(uint)key;
                int x = odtk % w, y = odtk / w % h, c = odtk / (w * h) % classes, an = odtk / (w * h * classes);
                int anchor = first + (y * w + x) * a + an;
                Coder.DecodeOne(regression.Slice(anchor * 4, 4), anchors.Slice(anchor * 4, 4), box);
                var dst = Boxes.AsSpan(Count * 4, 4);
                dst[0] = Clamp(box[0], maxX);
                dst[1] = Clamp(box[1], maxY);
                dst[2] = Clamp(box[2], maxX);
                dst[3] = Clamp(box[3], maxY);
                Scores[Count] = Sigmoid(logits[(anchor * classes) + c]);
                Labels[Count] = c;
                Count++;
            }
            first += levelAnchors;
        }
        FinishOdtk(output);
    }

    private static float Sigmoid(float x) => 1f / (1f + MathF.Exp(-x));

    /// <summary>torch.max(0, torch.min(v, hi)) (NaN stays NaN).</summary>
    private static float Clamp(float v, float hi) => float.IsNaN(v) ? v : MathF.Max(0f, MathF.Min(v, hi));

    private void FinishOdtk(List<DetectedObject> output)
    {
        int n = Count;
        Workspace.Ensure(n);
        var keys = Workspace.Keys.AsSpan(0, n);
        for (int i = 0; i < n; i++) keys[i] = Nms.DescendingKey(Scores[i], i);
        keys.Sort();
        var order = Workspace.Order.AsSpan(0, n);
        for (int i = 0; i < n; i++) order[i] = (int)(uint)keys[i];
        var suppressed = Workspace.Suppressed.AsSpan(0, n);
        suppressed.Clear();
        float thr = (float)Options.NmsThreshold;
        int kept = 0;
        for (int p = 0; p < n && kept < Options.DetectionsPerImage; p++)
        {
            if (suppressed[p]) continue;
            int m = order[p];
            output.Add(new DetectedObject(Boxes[m * 4], Boxes[m * 4 + 1], Boxes[m * 4 + 2], Boxes[m * 4 + 3], Scores[m], Labels[m]));
            kept++;
            var mb = Boxes.AsSpan(m * 4, 4);
            float marea = (mb[2] - mb[0] + 1) * (mb[3] - mb[1] + 1);
            for (int q = p + 1; q < n; q++)
            {
                int i = order[q];
                if (suppressed[q] || Labels[i] != Labels[m]) continue;
                var ib = Boxes.AsSpan(i * 4, 4);
                float iw = MathF.Max(0f, MathF.Min(ib[2], mb[2]) - MathF.Max(ib[0], mb[0]) + 1);
                float ih = MathF.Max(0f, MathF.Min(ib[3], mb[3]) - MathF.Max(ib[1], mb[1]) + 1);
                float iarea = (ib[2] - ib[0] + 1) * (ib[3] - ib[1] + 1);
                float inter = iw * ih;
                if (inter / (iarea + marea - inter) > thr) suppressed[q] = true;
            }
        }
        Count = 0;
    }
}

/// <summary>
/// NVIDIA DeepLearningExamples SSD300 v1.1 post-processing for one image (ssd/utils.py Encoder.decode_batch with
/// evaluate.py's settings): softmax over the 81 classes, every box decoded with <see cref="BoxCoder.NvidiaSsd"/>
/// against the (cx, cy, w, h) default boxes (no clipping), then per foreground class the scores strictly above the
/// threshold (DLE: 0.05), the best <see cref="PostProcessOptions.CandidatesPerLevel"/> (DLE: 200), greedy NMS that keeps
/// a box only while its IoU with every better kept box is strictly below the threshold (DLE: `iou &lt; criteria`,
/// criteria 0.5), and over all classes the best <see cref="PostProcessOptions.DetectionsPerImage"/> (200).
/// Output corners are relative to the image (0..1). Equal scores: the higher box index first (DLE takes the last of an
/// ascending sort).
/// </summary>
public sealed class NvidiaSsdPostProcessor(PostProcessOptions options) : PostProcessorBase(options)
{
    private float[] _probs = [], _decoded = [];

    public BoxCoder Coder { get; } = BoxCoder.NvidiaSsd;

    /// <param name="logits">[boxes, classes] (class 0 = background).</param>
    /// <param name="regression">[boxes, 4].</param>
    /// <param name="defaultBoxes">[boxes, 4] as (cx, cy, w, h), from <see cref="NvidiaDefaultBoxes.Generate"/>.</param>
    public void Run(ReadOnlySpan<float> logits, ReadOnlySpan<float> regression, ReadOnlySpan<float> defaultBoxes, int classes, List<DetectedObject> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        int n = defaultBoxes.Length / 4;
        if (classes <= 1 || defaultBoxes.Length % 4 != 0 || logits.Length != (long)n * classes || regression.Length != n * 4)
            throw new ArgumentException($"nvidia ssd postprocess: {n} boxes x {classes} classes need {(long)n * classes} logits and {n * 4} regression floats; got {logits.Length}, {regression.Length}");
        if (_probs.Length < logits.Length) _probs = new float[logits.Length];
        if (_decoded.Length < n * 4) _decoded = new float[n * 4];
        var probs = _probs.AsSpan(0, logits.Length);
        for (int a = 0; a < n; a++) SsdPostProcessor.Softmax(logits.Slice(a * classes, classes), probs.Slice(a * classes, classes));
        var boxes = _decoded.AsSpan(0, n * 4);
        Coder.Decode(regression, defaultBoxes, boxes);
        float thr = Options.ScoreThreshold;
        float crit = (float)Options.NmsThreshold;
        var keys = TopKeyBuffer(n);
        Workspace.Ensure(n);
        Count = 0;
        for (int c = 1; c < classes; c++)
        {
            int m = 0;
            for (int a = 0; a < n; a++)
            {
                float s = probs[a * classes + c];
                if (s > thr) keys[m++] = Nms.DescendingKey(s, n - 1 - a);   // equal scores: higher index first
            }
            var cand = keys[..m];
            int k = Math.Min(m, Options.CandidatesPerLevel);
            if (k < m) RetinaNetPostProcessor.SelectTop(cand, k);
            cand = cand[..k];
            cand.Sort();
            var suppressed = Workspace.Suppressed.AsSpan(0, k);
            suppressed.Clear();
            Reserve(k);
            for (int p = 0; p < k; p++)
            {
                if (suppressed[p]) continue;
                int best = n - 1 - (int)(uint)cand[p];
                var bb = boxes.Slice(best * 4, 4);
                bb.CopyTo(Boxes.AsSpan(Count * 4, 4));
                Scores[Count] = probs[best * classes + c];
                Labels[Count] = c;
                Count++;
                for (int q = p + 1; q < k; q++)
                {
                    if (suppressed[q]) continue;
                    int i = n - 1 - (int)(uint)cand[q];
                    if (!(BoxOps.Iou(boxes.Slice(i * 4, 4), bb) < crit)) suppressed[q] = true;
                }
            }
        }
        // all kept boxes by score, best first (ties: later class, then later in its class, first: DLE's ascending sort's tail);
        // up to (classes - 1) x CandidatesPerLevel of them, which can exceed the box count
        Workspace.Ensure(Count);
        var final = Workspace.Keys.AsSpan(0, Count);
        for (int i = 0; i < Count; i++) final[i] = Nms.DescendingKey(Scores[i], Count - 1 - i);
        final.Sort();
        int keep = Math.Min(Count, Options.DetectionsPerImage);
        for (int r = 0; r < keep; r++)
        {
            int i = Count - 1 - (int)(uint)final[r];
            output.Add(new DetectedObject(Boxes[i * 4], Boxes[i * 4 + 1], Boxes[i * 4 + 2], Boxes[i * 4 + 3], Scores[i], Labels[i]));
        }
        Count = 0;
    }
}
