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
        int n = targets.Count, a = anchors.Length / 4, k = numClasses;
        Check(clsLogits.Length, boxRegression.Length, anchors.Length, n, k, clsGrad.Length, boxGrad.Length, "retinanet loss");
        for (int i = 0; i < n; i++) targets[i].Check(k, $"retinanet loss: target {i}");
        clsGrad.Clear();
        boxGrad.Clear();
        double clsTotal = 0, boxTotal = 0;
        Span<double> pred = stackalloc double[4], gt = stackalloc double[4], g4 = stackalloc double[4];
        Span<float> code = stackalloc float[4], box = stackalloc float[4];
        for (int i = 0; i < n; i++)
        {
            var t = targets[i];
            int[] matches = Matcher.MatchBoxes(t.Boxes, anchors, options.Matcher);
            int fg = 0;
            foreach (int m in matches) if (m >= 0) fg++;
            double norm = Math.Max(1, fg);
            double clsScale = 1.0 / (norm * n), boxScale = 1.0 / (norm * Math.Max(1, n));
            var logits = clsLogits.Slice(i * a * k, a * k);
            var lg = clsGrad.Slice(i * a * k, a * k);
            var reg = boxRegression.Slice(i * a * 4, a * 4);
            var rg = boxGrad.Slice(i * a * 4, a * 4);
            double clsSum = 0, boxSum = 0;
            for (int j = 0; j < a; j++)
            {
                int m = matches[j];
                if (m == Matcher.Ignore) continue;
                int label = m >= 0 ? t.Labels[m] : -1;
                for (int c = 0; c < k; c++)
                {
                    clsSum += LossFunctions.SigmoidFocal(logits[j * k + c], c == label ? 1 : 0, options.Alpha, options.Gamma, out double d);
                    lg[j * k + c] = (float)(d * clsScale);
                }
                if (m < 0) continue;
                var anchor = anchors.Slice(j * 4, 4);
                var gtBox = t.Boxes.AsSpan(m * 4, 4);
                if (options.BoxLoss == BoxLossKind.GIoU)
                {
                    boxSum += GiouOnCodes(options.Coder, reg.Slice(j * 4, 4), anchor, gtBox, options.GiouEps, rg.Slice(j * 4, 4), boxScale, pred, gt, g4, box);
                    continue;
                }
                options.Coder.EncodeOne(gtBox, anchor, code);
                for (int q = 0; q < 4; q++)
                {
                    double diff = (double)reg[j * 4 + q] - code[q];
                    double d;
                    boxSum += options.BoxLoss == BoxLossKind.L1 ? LossFunctions.L1(diff, out d) : LossFunctions.SmoothL1(diff, options.Beta, out d);
                    rg[j * 4 + q] = (float)(d * boxScale);
                }
            }
            clsTotal += clsSum / norm;
            boxTotal += boxSum / norm;
        }
        return new DetectionLoss(clsTotal / n, boxTotal / Math.Max(1, n));
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
