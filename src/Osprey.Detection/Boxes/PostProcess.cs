namespace Osprey.Detection.Boxes;

/// <summary>
/// DetectedObject post-processing settings. <see cref="RetinaNetTorchvision"/> and <see cref="Ssd300Torchvision"/>
/// reproduce torchvision's defaults exactly; <see cref="Odtk"/> uses NVIDIA ODTK's inference defaults.
/// </summary>
/// <param name="ScoreThreshold">Candidates need a score strictly greater than this (compared in float32, as torch).</param>
/// <param name="CandidatesPerLevel">Top-k kept per feature level (RetinaNet) or per class (SSD) before NMS.</param>
/// <param name="NmsThreshold">Boxes with IoU strictly greater than this with a better box of their class are dropped.</param>
/// <param name="DetectionsPerImage">Best detections kept after NMS.</param>
public sealed record PostProcessOptions(float ScoreThreshold, int CandidatesPerLevel, double NmsThreshold, int DetectionsPerImage)
{
    public static PostProcessOptions RetinaNetTorchvision { get; } = new(0.05f, 1000, 0.5, 300);
    public static PostProcessOptions Ssd300Torchvision { get; } = new(0.01f, 400, 0.45, 200);
    /// <summary>ODTK's `odtk infer` defaults: threshold 0.05, top 1000 per level, NMS 0.5, 100 detections.</summary>
    public static PostProcessOptions Odtk { get; } = new(0.05f, 1000, 0.5, 100);
    /// <summary>
    /// NVIDIA DeepLearningExamples SSD300 v1.1 evaluation (ssd/evaluate.py, utils.py decode_single): threshold 0.05, top 200
    /// per class, NMS criteria 0.5 (a box is kept only while its IoU is strictly below it), 200 detections.
    /// </summary>
    public static PostProcessOptions NvidiaSsd300 { get; } = new(0.05f, 200, 0.5, 200);

    public void Validate()
    {
        if (!(ScoreThreshold >= 0 && ScoreThreshold < 1)) throw new ArgumentException($"score threshold {ScoreThreshold} must be in [0, 1)");
        if (CandidatesPerLevel <= 0) throw new ArgumentException($"candidates per level {CandidatesPerLevel} must be positive");
        if (!(NmsThreshold >= 0 && NmsThreshold <= 1)) throw new ArgumentException($"NMS threshold {NmsThreshold} must be in [0, 1]");
        if (DetectionsPerImage <= 0) throw new ArgumentException($"detections per image {DetectionsPerImage} must be positive");
    }
}

/// <summary>
/// Shared candidate buffers of the post-processors: candidates are appended (box, score, label), then batched
/// NMS picks the final detections. Buffers grow on demand and are reused, so steady-state calls do not allocate
/// beyond the result list. One instance per thread.
/// </summary>
public abstract class PostProcessorBase
{
    private protected readonly NmsWorkspace Workspace = new();
    private protected float[] Boxes = [], Scores = [];
    private protected int[] Labels = [], Keep = [];
    private protected ulong[] TopKeys = [];
    private protected int Count;

    protected PostProcessorBase(PostProcessOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
    }

    public PostProcessOptions Options { get; }

    private protected void Reserve(int more)
    {
        int need = Count + more;
        if (Scores.Length >= need) return;
        int c = Math.Max(need, Scores.Length * 2);
        Array.Resize(ref Boxes, c * 4);
        Array.Resize(ref Scores, c);
        Array.Resize(ref Labels, c);
    }

    private protected Span<ulong> TopKeyBuffer(int n)
    {
        if (TopKeys.Length < n) TopKeys = new ulong[Math.Max(n, TopKeys.Length * 2)];
        return TopKeys.AsSpan(0, n);
    }

    /// <summary>Batched NMS over the candidates; appends the best <see cref="PostProcessOptions.DetectionsPerImage"/> to output.</summary>
    private protected void Finish(List<DetectedObject> output)
    {
        if (Keep.Length < Count) Keep = new int[Math.Max(Count, Keep.Length * 2)];
        int kept = Count == 0 ? 0 : Nms.Batched(Boxes.AsSpan(0, Count * 4), Scores.AsSpan(0, Count), Labels.AsSpan(0, Count),
            Options.NmsThreshold, Keep, Workspace);
        kept = Math.Min(kept, Options.DetectionsPerImage);
        for (int k = 0; k < kept; k++)
        {
            int i = Keep[k];
            output.Add(new DetectedObject(Boxes[i * 4], Boxes[i * 4 + 1], Boxes[i * 4 + 2], Boxes[i * 4 + 3], Scores[i], Labels[i]));
        }
        Count = 0;
    }
}

/// <summary>
/// torchvision 0.14's RetinaNet.postprocess_detections for one image: per level, sigmoid scores above the
/// threshold, the top-k of them (score descending, lower flat index first), decoded and clipped; then class-aware
/// batched NMS and the best detections. Inputs are the head outputs of one image concatenated over levels:
/// logits [anchors, classes] (anchor-major), regression [anchors, 4], anchors [anchors, 4].
/// </summary>
public sealed class RetinaNetPostProcessor(PostProcessOptions options, BoxCoder coder) : PostProcessorBase(options)
{
    public RetinaNetPostProcessor(PostProcessOptions options) : this(options, BoxCoder.RetinaNet) { }

    public BoxCoder Coder { get; } = coder;

    public void Run(ReadOnlySpan<float> logits, ReadOnlySpan<float> regression, ReadOnlySpan<float> anchors,
        ReadOnlySpan<int> anchorsPerLevel, int classes, ImageSize imageSize, List<DetectedObject> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        int total = 0;
        foreach (int c in anchorsPerLevel) total = checked(total + c);
        if (classes <= 0 || logits.Length != (long)total * classes || regression.Length != total * 4 || anchors.Length != total * 4)
            throw new ArgumentException($"retinanet postprocess: {total} anchors x {classes} classes need {(long)total * classes} logits and {total * 4} regression/anchor floats; got {logits.Length}, {regression.Length}, {anchors.Length}");
        float thr = Options.ScoreThreshold;
        // a logit below logit(thr) - margin cannot pass sigmoid(x) > thr; the margin covers exp's rounding
        float logitFloor = thr <= 0 ? float.NegativeInfinity : MathF.Log(thr / (1 - thr)) - 1e-3f;
        Count = 0;
        int first = 0;
        Span<float> box = stackalloc float[4];
        foreach (int levelAnchors in anchorsPerLevel)
        {
            var lvl = logits.Slice(first * classes, levelAnchors * classes);
            int n = 0;
            var keys = TopKeyBuffer(lvl.Length);
            for (int i = 0; i < lvl.Length; i++)
            {
                float x = lvl[i];
                if (!(x > logitFloor)) continue;
                float s = 1f / (1f + MathF.Exp(-x));
                if (s > thr) keys[n++] = Nms.DescendingKey(s, i);
            }
            var cand = keys[..n];
            int k = Math.Min(n, Options.CandidatesPerLevel);
            if (k < n) SelectTop(cand, k);
            cand = cand[..k];
            cand.Sort();
            Reserve(k);
            foreach (ulong key in cand)
            {
                int flat = (int)(uint)key;
                int a = first + flat / classes;
                Coder.DecodeOne(regression.Slice(a * 4, 4), anchors.Slice(a * 4, 4), box);
                BoxOps.ClipToImage(box, imageSize);
                box.CopyTo(Boxes.AsSpan(Count * 4, 4));
                Scores[Count] = 1f / (1f + MathF.Exp(-lvl[flat]));
                Labels[Count] = flat % classes;
                Count++;
            }
            first += levelAnchors;
        }
        Finish(output);
    }

    /// <summary>Moves the k smallest keys to the front (unordered): quickselect with median-of-three pivots.</summary>
    internal static void SelectTop(Span<ulong> keys, int k)
    {
        int lo = 0, hi = keys.Length - 1;
        while (hi > lo)
        {
            int mid = lo + (hi - lo) / 2;
            if (keys[mid] < keys[lo]) (keys[mid], keys[lo]) = (keys[lo], keys[mid]);
            if (keys[hi] < keys[lo]) (keys[hi], keys[lo]) = (keys[lo], keys[hi]);
            if (keys[hi] < keys[mid]) (keys[hi], keys[mid]) = (keys[mid], keys[hi]);
            ulong pivot = keys[mid];
            int i = lo, j = hi;
            while (i <= j)
            {
                while (keys[i] < pivot) i++;
                while (keys[j] > pivot) j--;
                if (i <= j) { (keys[i], keys[j]) = (keys[j], keys[i]); i++; j--; }
            }
            if (k - 1 <= j) hi = j;
            else if (k - 1 >= i) lo = i;
            else return;
        }
    }
}

/// <summary>
/// torchvision 0.14's SSD.postprocess_detections for one image: softmax over classes, every box decoded
/// (weights 10, 10, 5, 5) and clipped, then per foreground class (1..C-1) the scores above the threshold and
/// their top-k, then class-aware batched NMS and the best detections.
/// Inputs: logits [anchors, classes], regression [anchors, 4], default boxes [anchors, 4] (x1, y1, x2, y2 pixels).
/// </summary>
public sealed class SsdPostProcessor(PostProcessOptions options, BoxCoder coder) : PostProcessorBase(options)
{
    private float[] _probs = [], _decoded = [];

    public SsdPostProcessor(PostProcessOptions options) : this(options, BoxCoder.Ssd) { }

    public BoxCoder Coder { get; } = coder;

    public void Run(ReadOnlySpan<float> logits, ReadOnlySpan<float> regression, ReadOnlySpan<float> anchors, int classes,
        ImageSize imageSize, List<DetectedObject> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        int n = anchors.Length / 4;
        if (classes <= 1 || anchors.Length % 4 != 0 || logits.Length != (long)n * classes || regression.Length != n * 4)
            throw new ArgumentException($"ssd postprocess: {n} boxes x {classes} classes need {(long)n * classes} logits and {n * 4} regression floats; got {logits.Length}, {regression.Length}");
        if (_probs.Length < logits.Length) _probs = new float[logits.Length];
        if (_decoded.Length < n * 4) _decoded = new float[n * 4];
        var probs = _probs.AsSpan(0, logits.Length);
        for (int a = 0; a < n; a++) Softmax(logits.Slice(a * classes, classes), probs.Slice(a * classes, classes));
        var boxes = _decoded.AsSpan(0, n * 4);
        Coder.Decode(regression, anchors, boxes);
        for (int a = 0; a < n; a++) BoxOps.ClipToImage(boxes.Slice(a * 4, 4), imageSize);
        float thr = Options.ScoreThreshold;
        var keys = TopKeyBuffer(n);
        Count = 0;
        for (int c = 1; c < classes; c++)
        {
            int m = 0;
            for (int a = 0; a < n; a++)
            {
                float s = probs[a * classes + c];
                if (s > thr) keys[m++] = Nms.DescendingKey(s, a);
            }
            var cand = keys[..m];
            int k = Math.Min(m, Options.CandidatesPerLevel);
            if (k < m) RetinaNetPostProcessor.SelectTop(cand, k);
            cand = cand[..k];
            cand.Sort();
            Reserve(k);
            foreach (ulong key in cand)
            {
                int a = (int)(uint)key;
                boxes.Slice(a * 4, 4).CopyTo(Boxes.AsSpan(Count * 4, 4));
                Scores[Count] = probs[a * classes + c];
                Labels[Count] = c;
                Count++;
            }
        }
        Finish(output);
    }

    /// <summary>torch's CPU softmax: exp(x - max) times the reciprocal of their sum.</summary>
    internal static void Softmax(ReadOnlySpan<float> x, Span<float> y)
    {
        float max = float.NegativeInfinity;
        foreach (float v in x) max = MathF.Max(max, v);
        float sum = 0;
        for (int i = 0; i < x.Length; i++) { y[i] = MathF.Exp(x[i] - max); sum += y[i]; }
        float inv = 1f / sum;
        for (int i = 0; i < y.Length; i++) y[i] *= inv;
    }
}
