using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Detection.Training.Matching;

namespace Osprey.Detection.Training.Losses;

/// <summary>
/// <see cref="SsdLoss"/> with the classification part where the logits are (the GPU in training), so the [N, A, K] logits and
/// their gradient never cross to the host: log-softmax and the per-anchor cross-entropy run as <see cref="Op"/> calls in float32;
/// only the [N, A] cross-entropies come down for torchvision's hard-negative ranking (<see cref="SsdLoss.Selected"/>), and only
/// the [N, A] selection weights go up; the gradient is (softmax - one-hot) x weight on the device. Matching and the smooth L1
/// box part stay on the host (N x A x 4 floats down, the same up). Same semantics as the host loss; the cross-entropies are
/// float32 here (float64 on the host), as in torch.
/// </summary>
public static class SsdLossOps
{
    public static HeadLossResult Compute(Tensor classLogits, Tensor boxRegression, ReadOnlySpan<float> anchors,
        IReadOnlyList<DetectionTarget> targets, SsdLossOptions options, double gradScale, Action<string>? mark = null)
    {
        ArgumentNullException.ThrowIfNull(classLogits);
        ArgumentNullException.ThrowIfNull(boxRegression);
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(options);
        int n = classLogits.Shape[0], a = classLogits.Shape[1], k = classLogits.Shape[2];
        RetinaNetLoss.Check(n * a * k, n * a * 4, anchors.Length, targets.Count, k, n * a * k, n * a * 4, "ssd loss");
        for (int i = 0; i < n; i++) targets[i].Check(k, $"ssd loss: target {i}");
        var matches = new int[n][];
        int totalFg = 0;
        var labelsAll = new float[n * a];
        for (int i = 0; i < n; i++)
        {
            matches[i] = Matcher.MatchBoxes(targets[i].Boxes, anchors, options.Matcher);
            for (int j = 0; j < a; j++)
            {
                int m = matches[i][j];
                if (m < 0) continue;
                totalFg++;
                labelsAll[i * a + j] = targets[i].Labels[m];
            }
        }
        mark?.Invoke("loss.match");
        double norm = Math.Max(1, totalFg), scale = 1 / norm;
        var (clsSum, classGrad) = CrossEntropy(classLogits, labelsAll, n, a, k, options.NegativeToPositive, scale * gradScale, mark);

        // smooth L1 on encoded targets over foreground, on the host
        float[] reg = Host(boxRegression);
        var gb = new float[reg.Length];
        double boxSum = 0;
        Span<float> code = stackalloc float[4];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < a; j++)
            {
                int m = matches[i][j];
                if (m < 0) continue;
                options.Coder.EncodeOne(targets[i].Boxes.AsSpan(m * 4, 4), anchors.Slice(j * 4, 4), code);
                for (int q = 0; q < 4; q++)
                {
                    int o = (i * a + j) * 4 + q;
                    boxSum += LossFunctions.SmoothL1((double)reg[o] - code[q], options.Beta, out double d);
                    gb[o] = (float)(d * scale * gradScale);
                }
            }
        Tensor? boxGrad = null;
        try
        {
            boxGrad = Upload(gb, boxRegression);
            mark?.Invoke("loss.box");
            return new HeadLossResult(new DetectionLoss(clsSum / norm, boxSum / norm), classGrad, boxGrad);
        }
        catch
        {
            classGrad.Dispose();
            boxGrad?.Dispose();
            throw;
        }
    }

    /// <summary>The cross-entropy sum over the selected anchors (times counted) and its gradient x <paramref name="weightScale"/>,
    /// in the logits' dtype and device.</summary>
    private static (double Sum, Tensor Grad) CrossEntropy(Tensor classLogits, float[] labelsAll, int n, int a, int k, int negativeToPositive, double weightScale, Action<string>? mark)
    {
        using var scope = new TensorScope();
        var dev = classLogits.Device;
        var x = classLogits.DType == DType.Float32 ? classLogits : Op.Cast(classLogits, DType.Float32);
        var label = Tensor.FromSpan<float>(labelsAll, new Shape(n, a, 1), dev);
        var classes = new float[k];
        for (int c = 0; c < k; c++) classes[c] = c;
        var t = Op.Cast(Op.Binary(BinaryOp.Eq, label, Tensor.FromSpan<float>(classes, new Shape(1, 1, k), dev)), DType.Float32);
        var logp = Op.LogSoftmax(x, 2);
        var ceDev = Op.Neg(Op.Sum(Op.Mul(logp, t), [2]));
        float[] ce = ceDev.ToArray<float>();
        mark?.Invoke("loss.ce");

        // hard-negative selection per image on the host, as the host loss
        var weights = new float[n * a];
        var key = new double[a];
        var order = new int[a];
        var labels = new int[a];
        double clsSum = 0;
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < a; j++)
            {
                labels[j] = (int)labelsAll[i * a + j];
                key[j] = labels[j] > 0 ? double.NegativeInfinity : ce[i * a + j];
                order[j] = j;
            }
            foreach (var (idx, times) in SsdLoss.Selected(key, order, labels, negativeToPositive))
            {
                clsSum += times * (double)ce[i * a + idx];
                weights[i * a + idx] = (float)(times * weightScale);
            }
        }
        mark?.Invoke("loss.mining");
        var w = Tensor.FromSpan<float>(weights, new Shape(n, a, 1), dev);
        var grad = Op.Mul(Op.Sub(Op.Exp(logp), t), w);
        var kept = scope.Keep(classLogits.DType == DType.Float32 ? grad : Op.Cast(grad, classLogits.DType));
        mark?.Invoke("loss.grad");
        return (clsSum, kept);
    }

    private static float[] Host(Tensor x)
    {
        if (x.DType == DType.Float32) return x.ToArray<float>();
        using var c = Op.Cast(x, DType.Float32);
        return c.ToArray<float>();
    }

    private static Tensor Upload(float[] g, Tensor like)
    {
        var t = Tensor.FromSpan<float>(g, like.Shape, like.Device);
        if (like.DType == DType.Float32) return t;
        using (t) return Op.Cast(t, like.DType);
    }
}
