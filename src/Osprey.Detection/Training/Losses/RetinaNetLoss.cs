using Osprey.Core.Cpu;
using Osprey.Detection.Boxes;
using Osprey.Detection.Training.Matching;

namespace Osprey.Detection.Training.Losses;

/// <summary>RetinaNet's box-regression loss: torchvision's <c>_box_loss</c> types.</summary>
public enum BoxLossKind
{
    /// <summary>L1 on encoded targets (torchvision RetinaNet's default).</summary>
    L1,
    /// <summary>Smooth L1 on encoded targets with <see cref="RetinaNetLossOptions.Beta"/> (ODTK: 0.11).</summary>
    SmoothL1,
    /// <summary>Generalized IoU on decoded boxes.</summary>
    GIoU,
}

/// <summary>Settings of <see cref="RetinaNetLoss"/>. <see cref="Torchvision"/> is torchvision 0.14's RetinaNet.</summary>
public sealed record RetinaNetLossOptions(
    float Alpha = 0.25f,
    float Gamma = 2f,
    BoxLossKind BoxLoss = BoxLossKind.L1,
    float Beta = 1f,
    float GiouEps = 1e-7f)
{
    public MatcherOptions Matcher { get; init; } = MatcherOptions.RetinaNet;
    public BoxCoder Coder { get; init; } = BoxCoder.RetinaNet;

    public static RetinaNetLossOptions Torchvision { get; } = new();

    /// <summary>ODTK's loss settings: IoU 0.5 / 0.4 without low-quality matches, smooth L1 with beta 0.11.</summary>
    public static RetinaNetLossOptions Odtk { get; } = new(BoxLoss: BoxLossKind.SmoothL1, Beta: 0.11f) { Matcher = MatcherOptions.Odtk };
}

/// <summary>
/// torchvision's <c>RetinaNetHead.compute_loss</c> for a batch, with the gradient of each part w.r.t. the head outputs.
/// Classification: per image, the sigmoid focal loss summed over every non-ignored anchor and class, divided by
/// max(1, foreground anchors), then averaged over images. Regression: per image, the box loss summed over foreground
/// anchors divided by max(1, foreground), then averaged over images.
/// </summary>
public static class RetinaNetLoss
{
    /// <summary>
    /// Computes the loss of a batch. <paramref name="clsLogits"/> is [N, A, K], <paramref name="boxRegression"/> [N, A, 4],
    /// <paramref name="anchors"/> [A, 4] (the same anchors for every image of a padded batch); <paramref name="clsGrad"/> and
    /// <paramref name="boxGrad"/> (same sizes as the outputs) receive d classification / d logits and d regression / d codes.
    /// </summary>
    public static DetectionLoss Compute(ReadOnlySpan<float> clsLogits, ReadOnlySpan<float> boxRegression, ReadOnlySpan<float> anchors,
        IReadOnlyList<DetectionTarget> targets, int numClasses, RetinaNetLossOptions options, Span<float> clsGrad, Span<float> boxGrad)
    {
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(options);
        Check(clsLogits.Length, boxRegression.Length, anchors.Length, targets.Count, numClasses, clsGrad.Length, boxGrad.Length, "retinanet loss");
        return Core(clsLogits, boxRegression, anchors, targets, numClasses, options, clsGrad, boxGrad, Match(anchors, targets, numClasses, options), true);
    }

    /// <summary>The matches of every image (anchor to ground-truth index, <see cref="Matcher.Background"/> or
    /// <see cref="Matcher.Ignore"/>), after checking the targets' labels against <paramref name="numClasses"/>.</summary>
    public static int[][] Match(ReadOnlySpan<float> anchors, IReadOnlyList<DetectionTarget> targets, int numClasses, RetinaNetLossOptions options)
    {
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(options);
        var matches = new int[targets.Count][];
        for (int i = 0; i < targets.Count; i++)
        {
            targets[i].Check(numClasses, $"retinanet loss: target {i}");
            matches[i] = Matcher.MatchBoxes(targets[i].Boxes, anchors, options.Matcher);
        }
        return matches;
    }

    /// <summary>The loss given the matches; with <paramref name="classification"/> false only the box part is computed and
    /// the logits and their gradient buffer are not touched (they may be empty).</summary>
    internal static DetectionLoss Core(ReadOnlySpan<float> clsLogits, ReadOnlySpan<float> boxRegression, ReadOnlySpan<float> anchors,
        IReadOnlyList<DetectionTarget> targets, int numClasses, RetinaNetLossOptions options, Span<float> clsGrad, Span<float> boxGrad,
        int[][] matchesPerImage, bool classification)
    {
        int n = targets.Count, a = anchors.Length / 4, k = numClasses;
        double clsTotal = 0, boxTotal = 0;
        int blocks = (a + BlockAnchors - 1) / BlockAnchors;
        var clsPart = new double[blocks];
        var boxPart = new double[blocks];
        unsafe
        {
            fixed (float* pc = clsLogits, pr = boxRegression, pa = anchors, gc = clsGrad, gr = boxGrad)
            {
                var ctx = new Context((nint)pc, (nint)pr, (nint)pa, (nint)gc, (nint)gr, a, k, options, classification);
                for (int i = 0; i < n; i++)
                {
                    int[] matches = matchesPerImage[i];
                    int fg = 0;
                    foreach (int m in matches) if (m >= 0) fg++;
                    double norm = Math.Max(1, fg);
                    var image = new ImageWork(i, targets[i], matches, 1.0 / (norm * n), 1.0 / (norm * Math.Max(1, n)));
                    // fixed blocks summed in order: the result does not depend on the thread count
                    Parallel2.For(blocks, (long)BlockAnchors * (classification ? k : 1) * 8, (lo, hi) =>
                    {
                        for (long b = lo; b < hi; b++) (clsPart[b], boxPart[b]) = ctx.Block(image, (int)b);
                    });
                    double clsSum = 0, boxSum = 0;
                    for (int b = 0; b < blocks; b++) { clsSum += clsPart[b]; boxSum += boxPart[b]; }
                    clsTotal += clsSum / norm;
                    boxTotal += boxSum / norm;
                }
            }
        }
        return new DetectionLoss(clsTotal / n, boxTotal / Math.Max(1, n));
    }

    /// <summary>Per-anchor classification inputs for <see cref="FocalLossOps"/>: the target class (-1 for background and
    /// ignored anchors) and the weight (1 / (max(1, foreground) x images), 0 for ignored anchors), [N x A] each.</summary>
    public static (float[] Labels, float[] Weights) ClassificationTargets(int[][] matches, IReadOnlyList<DetectionTarget> targets, int anchors)
    {
        ArgumentNullException.ThrowIfNull(matches);
        ArgumentNullException.ThrowIfNull(targets);
        int n = targets.Count;
        var labels = new float[(long)n * anchors];
        var weights = new float[(long)n * anchors];
        for (int i = 0; i < n; i++)
        {
            var m = matches[i];
            if (m.Length != anchors) throw new ArgumentException($"retinanet loss: image {i} has {m.Length} matches for {anchors} anchors");
            int fg = 0;
            foreach (int v in m) if (v >= 0) fg++;
            float w = (float)(1.0 / (Math.Max(1, fg) * (double)n));
            for (int j = 0; j < anchors; j++)
            {
                labels[(long)i * anchors + j] = m[j] >= 0 ? targets[i].Labels[m[j]] : -1;
                weights[(long)i * anchors + j] = m[j] == Matcher.Ignore ? 0 : w;
            }
        }
        return (labels, weights);
    }

    private const int BlockAnchors = 1024;

    private sealed record ImageWork(int Index, DetectionTarget Target, int[] Matches, double ClsScale, double BoxScale);

    /// <summary>Pointers to the caller's buffers for the worker threads (the spans are pinned for the whole call).</summary>
    private readonly unsafe record struct Context(nint Cls, nint Reg, nint Anchors, nint ClsGrad, nint BoxGrad, int A, int K, RetinaNetLossOptions Options, bool Classification)
    {
        /// <summary>Loss sums of anchors [b * BlockAnchors, ...) of one image; writes their gradients (zero for ignored anchors).</summary>
        public (double Cls, double Box) Block(ImageWork w, int b)
        {
            int j0 = b * BlockAnchors, j1 = Math.Min(A, j0 + BlockAnchors);
            int kk = Classification ? K : 0;                  // without classification the logit spans are empty
            long imageCls = (long)w.Index * A * kk, imageBox = (long)w.Index * A * 4;
            var logits = new ReadOnlySpan<float>((float*)Cls + imageCls + (long)j0 * kk, (j1 - j0) * kk);
            var lg = new Span<float>((float*)ClsGrad + imageCls + (long)j0 * kk, (j1 - j0) * kk);
            var reg = new ReadOnlySpan<float>((float*)Reg + imageBox + (long)j0 * 4, (j1 - j0) * 4);
            var rg = new Span<float>((float*)BoxGrad + imageBox + (long)j0 * 4, (j1 - j0) * 4);
            var anchors = new ReadOnlySpan<float>((float*)Anchors + (long)j0 * 4, (j1 - j0) * 4);
            lg.Clear();
            rg.Clear();
            var o = Options;
            double alpha = o.Alpha, gamma = o.Gamma;
            double clsSum = 0, boxSum = 0;
            Span<double> pred = stackalloc double[4], gt = stackalloc double[4], g4 = stackalloc double[4];
            Span<float> code = stackalloc float[4], box = stackalloc float[4];
            for (int j = 0; j < j1 - j0; j++)
            {
                int m = w.Matches[j0 + j];
                if (m == Matcher.Ignore) continue;
                int label = m >= 0 ? w.Target.Labels[m] : -1;
                var row = logits.Slice(j * kk, kk);
                var grow = lg.Slice(j * kk, kk);
                for (int c = 0; c < row.Length; c++)
                {
                    clsSum += LossFunctions.SigmoidFocal(row[c], c == label ? 1 : 0, alpha, gamma, out double d);
                    grow[c] = (float)(d * w.ClsScale);
                }
                if (m < 0) continue;
                var anchor = anchors.Slice(j * 4, 4);
                var gtBox = w.Target.Boxes.AsSpan(m * 4, 4);
                if (o.BoxLoss == BoxLossKind.GIoU)
                {
                    boxSum += GiouOnCodes(o.Coder, reg.Slice(j * 4, 4), anchor, gtBox, o.GiouEps, rg.Slice(j * 4, 4), w.BoxScale, pred, gt, g4, box);
                    continue;
                }
                o.Coder.EncodeOne(gtBox, anchor, code);
                for (int q = 0; q < 4; q++)
                {
                    double diff = (double)reg[j * 4 + q] - code[q];
                    double d;
                    boxSum += o.BoxLoss == BoxLossKind.L1 ? LossFunctions.L1(diff, out d) : LossFunctions.SmoothL1(diff, o.Beta, out d);
                    rg[j * 4 + q] = (float)(d * w.BoxScale);
                }
            }
            return (clsSum, boxSum);
        }
    }

    /// <summary>GIoU of the box decoded from <paramref name="codes"/> (torchvision's decode_single, dw/dh clamped) against the
    /// target, and its gradient through the decode, scaled, into <paramref name="grad"/>.</summary>
    internal static double GiouOnCodes(BoxCoder coder, ReadOnlySpan<float> codes, ReadOnlySpan<float> anchor, ReadOnlySpan<float> target,
        float eps, Span<float> grad, double scale, Span<double> pred, Span<double> gt, Span<double> g4, Span<float> box)
    {
        coder.DecodeOne(codes, anchor, box);
        for (int q = 0; q < 4; q++) { pred[q] = box[q]; gt[q] = target[q]; }
        double loss = LossFunctions.GeneralizedIou(pred, gt, eps, g4);
        double w = anchor[2] - anchor[0], h = anchor[3] - anchor[1];
        float dw = codes[2] / coder.Ww, dh = codes[3] / coder.Wh;
        // x1 = cx + w dx - pw / 2, x2 = cx + w dx + pw / 2, pw = w exp(min(dw, clip)); the clamp passes the gradient at dw <= clip
        double pw = dw <= coder.Clip ? Math.Exp(MathF.Min(dw, coder.Clip)) * w : 0;
        double ph = dh <= coder.Clip ? Math.Exp(MathF.Min(dh, coder.Clip)) * h : 0;
        grad[0] = (float)((g4[0] + g4[2]) * w / coder.Wx * scale);
        grad[1] = (float)((g4[1] + g4[3]) * h / coder.Wy * scale);
        grad[2] = (float)((g4[2] - g4[0]) * 0.5 * pw / coder.Ww * scale);
        grad[3] = (float)((g4[3] - g4[1]) * 0.5 * ph / coder.Wh * scale);
        return loss;
    }

    internal static void Check(int cls, int reg, int anc, int n, int k, int clsGrad, int boxGrad, string what)
    {
        if (k <= 0) throw new ArgumentException($"{what}: {k} classes");
        if (n <= 0) throw new ArgumentException($"{what}: a batch needs at least one image (targets given: {n})");
        if (anc % 4 != 0) throw new ArgumentException($"{what}: anchors hold {anc} floats (need 4 per anchor)");
        long a = anc / 4;
        if (cls != n * a * k || reg != n * a * 4)
            throw new ArgumentException($"{what}: {n} images x {a} anchors x {k} classes need {n * a * k} logits and {n * a * 4} codes, got {cls} and {reg}");
        if (clsGrad != cls || boxGrad != reg)
            throw new ArgumentException($"{what}: gradient buffers hold {clsGrad} and {boxGrad} floats, need {cls} and {reg}");
    }
}
