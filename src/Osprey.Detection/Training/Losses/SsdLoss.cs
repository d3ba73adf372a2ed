using Osprey.Detection.Boxes;
using Osprey.Detection.Training.Matching;

namespace Osprey.Detection.Training.Losses;

/// <summary>Settings of <see cref="SsdLoss"/>; the defaults are torchvision 0.14's SSD (neg:pos 3:1, smooth L1 beta 1,
/// SSDMatcher(0.5), box coder weights 10, 10, 5, 5).</summary>
public sealed record SsdLossOptions(int NegativeToPositive = 3, float Beta = 1f)
{
    public MatcherOptions Matcher { get; init; } = MatcherOptions.Ssd;
    public BoxCoder Coder { get; init; } = BoxCoder.Ssd;

    public static SsdLossOptions Torchvision { get; } = new();
}

/// <summary>
/// torchvision's <c>SSD.compute_loss</c> for a batch, with gradients. Regression: smooth L1 on encoded targets summed over
/// foreground default boxes. Classification: softmax cross-entropy (class 0 is background) over the foreground boxes plus, per
/// image, the 3 x foreground hardest negatives (ranked by their loss, foreground ranked last). Both divided by the batch's
/// foreground count (at least 1). As in torchvision, when an image asks for more negatives than it has, the ranking reaches
/// foreground boxes and their loss counts twice.
/// </summary>
public static class SsdLoss
{
    /// <summary><paramref name="clsLogits"/> [N, A, K] with K including background, <paramref name="boxRegression"/> [N, A, 4],
    /// <paramref name="anchors"/> [A, 4]; gradients as the outputs.</summary>
    public static DetectionLoss Compute(ReadOnlySpan<float> clsLogits, ReadOnlySpan<float> boxRegression, ReadOnlySpan<float> anchors,
        IReadOnlyList<DetectionTarget> targets, int numClasses, SsdLossOptions options, Span<float> clsGrad, Span<float> boxGrad)
    {
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(options);
        int n = targets.Count, a = anchors.Length / 4, k = numClasses;
        RetinaNetLoss.Check(clsLogits.Length, boxRegression.Length, anchors.Length, n, k, clsGrad.Length, boxGrad.Length, "ssd loss");
        for (int i = 0; i < n; i++) targets[i].Check(k, $"ssd loss: target {i}");
        clsGrad.Clear();
        boxGrad.Clear();
        var matches = new int[n][];
        int totalFg = 0;
        for (int i = 0; i < n; i++)
        {
            matches[i] = Matcher.MatchBoxes(targets[i].Boxes, anchors, options.Matcher);
            foreach (int m in matches[i]) if (m >= 0) totalFg++;
        }
        double norm = Math.Max(1, totalFg), scale = 1 / norm;
        double clsSum = 0, boxSum = 0;
        var ce = new double[a];
        var order = new int[a];
        var key = new double[a];
        var labels = new int[a];
        Span<float> code = stackalloc float[4];
        for (int i = 0; i < n; i++)
        {
            var t = targets[i];
            var mi = matches[i];
            for (int j = 0; j < a; j++)
            {
                int m = mi[j];
                labels[j] = m >= 0 ? t.Labels[m] : 0;
                ce[j] = LossFunctions.CrossEntropy(clsLogits.Slice((i * a + j) * k, k), labels[j], 0, default);
                // torchvision counts foreground as label > 0 for the classification term
                key[j] = labels[j] > 0 ? double.NegativeInfinity : ce[j];
                order[j] = j;
                if (m < 0) continue;
                options.Coder.EncodeOne(t.Boxes.AsSpan(m * 4, 4), anchors.Slice(j * 4, 4), code);
                for (int q = 0; q < 4; q++)
                {
                    int o = (i * a + j) * 4 + q;
                    boxSum += LossFunctions.SmoothL1((double)boxRegression[o] - code[q], options.Beta, out double d);
                    boxGrad[o] = (float)(d * scale);
                }
            }
            foreach (var (idx, times) in Selected(key, order, labels, options.NegativeToPositive))
            {
                clsSum += times * ce[idx];
                LossFunctions.CrossEntropy(clsLogits.Slice((i * a + idx) * k, k), labels[idx], times * scale, clsGrad.Slice((i * a + idx) * k, k));
            }
        }
        return new DetectionLoss(clsSum / norm, boxSum / norm);
    }

    /// <summary>torchvision's hard-negative selection for one image: <paramref name="key"/> holds each anchor's loss, -inf for
    /// foreground (label > 0), <paramref name="order"/> 0..A-1 (both overwritten). Yields (anchor, times counted): foreground
    /// once, the NegativeToPositive x foreground highest-ranked anchors once more (ranked descending, ties by index), in rank order.</summary>
    internal static IEnumerable<(int Index, int Times)> Selected(double[] key, int[] order, int[] labels, int negativeToPositive)
    {
        int a = key.Length;
        int positives = 0;
        for (int j = 0; j < a; j++) if (labels[j] > 0) positives++;
        long negatives = (long)negativeToPositive * positives;
        // descending by key, ties by index (stable), so foreground (-inf) comes last
        Array.Sort(key, order);
        Array.Reverse(key);
        Array.Reverse(order);
        StableTies(key, order);
        for (int j = 0; j < a; j++)
        {
            int idx = order[j];
            int times = (labels[idx] > 0 ? 1 : 0) + (j < negatives ? 1 : 0);
            if (times > 0) yield return (idx, times);
        }
    }

    /// <summary>Within runs of equal keys, puts indices back in ascending order.</summary>
    private static void StableTies(double[] key, int[] order)
    {
        for (int s = 0; s < key.Length;)
        {
            int e = s + 1;
            while (e < key.Length && key[e].Equals(key[s])) e++;
            if (e - s > 1) Array.Sort(order, s, e - s);
            s = e;
        }
    }
}
