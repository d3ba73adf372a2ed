namespace Osprey.Detection.Training.Losses;

/// <summary>
/// Element losses with their closed-form derivatives, computed in float64 (the batch losses call these per element and
/// sum in float64; torch computes in float32, so results agree to float32 rounding). Each returns the loss and writes
/// d loss / d input. Semantics are torch's: <c>sigmoid_focal_loss</c>, <c>smooth_l1_loss</c>, <c>l1_loss</c>,
/// <c>generalized_box_iou_loss</c>, <c>cross_entropy</c>, including their subgradients at kinks (sign(0) = 0; an exact tie
/// of max/min splits the gradient in half, as torch's maximum/minimum backward does).
/// </summary>
public static class LossFunctions
{
    /// <summary>torchvision's sigmoid_focal_loss for one logit x and target t (0 or 1, soft targets allowed):
    /// alpha_t * BCE(x, t) * (1 - p_t)^gamma, alpha_t = alpha t + (1 - alpha)(1 - t); alpha &lt; 0 disables alpha.</summary>
    public static double SigmoidFocal(double x, double t, double alpha, double gamma, out double grad)
    {
        // BCE with logits, torch's (1 - t) x + m + log(e^-m + e^(-x-m)) with m = max(-x, 0), which equals
        // (1 - t) x + m + log1p(e^-|x|); one exponential serves the sigmoid too
        double e = Math.Exp(-Math.Abs(x));
        double p = x >= 0 ? 1 / (1 + e) : e / (1 + e);
        double ce = (1 - t) * x + Math.Max(-x, 0) + Math.Log(1 + e);
        double pt = p * t + (1 - p) * (1 - t);
        double q = 1 - pt;
        double a = alpha >= 0 ? alpha * t + (1 - alpha) * (1 - t) : 1;
        // d/dx: dce = p - t; dq = -(2t - 1) p (1 - p); d(q^g) = g q^(g-1) dq
        double dq = -(2 * t - 1) * p * (1 - p);
        double mod, dmod;
        if (gamma == 2) { mod = q * q; dmod = 2 * q * dq; }
        else { mod = Math.Pow(q, gamma); dmod = gamma == 0 ? 0 : gamma * Math.Pow(q, gamma - 1) * dq; }
        grad = a * ((p - t) * mod + ce * dmod);
        return a * ce * mod;
    }

    /// <summary>torch's smooth_l1_loss of d = prediction - target: 0.5 d^2 / beta when |d| &lt; beta, else |d| - 0.5 beta
    /// (beta 0 is L1). <paramref name="grad"/> is d loss / d prediction.</summary>
    public static double SmoothL1(double d, double beta, out double grad)
    {
        double z = Math.Abs(d);
        if (beta > 0 && z < beta)
        {
            grad = d / beta;
            return 0.5 * z * z / beta;
        }
        grad = Math.Sign(d);
        return z - 0.5 * beta;
    }

    /// <summary>torch's l1_loss of d = prediction - target; the gradient is sign(d), 0 at 0.</summary>
    public static double L1(double d, out double grad)
    {
        grad = Math.Sign(d);
        return Math.Abs(d);
    }

    /// <summary>
    /// torchvision's generalized_box_iou_loss of one predicted box <paramref name="p"/> against a target box <paramref name="g"/>
    /// (x1, y1, x2, y2): 1 - I / (U + eps) + (C - U) / (C + eps). Writes d loss / d p into <paramref name="grad"/>.
    /// </summary>
    public static double GeneralizedIou(ReadOnlySpan<double> p, ReadOnlySpan<double> g, double eps, Span<double> grad)
    {
        double x1 = p[0], y1 = p[1], x2 = p[2], y2 = p[3];
        double xk1 = Math.Max(x1, g[0]), yk1 = Math.Max(y1, g[1]), xk2 = Math.Min(x2, g[2]), yk2 = Math.Min(y2, g[3]);
        bool overlap = yk2 > yk1 && xk2 > xk1;
        double inter = overlap ? (xk2 - xk1) * (yk2 - yk1) : 0;
        double areaP = (x2 - x1) * (y2 - y1);
        double union = areaP + (g[2] - g[0]) * (g[3] - g[1]) - inter;
        double xc1 = Math.Min(x1, g[0]), yc1 = Math.Min(y1, g[1]), xc2 = Math.Max(x2, g[2]), yc2 = Math.Max(y2, g[3]);
        double areaC = (xc2 - xc1) * (yc2 - yc1);
        double loss = 1 - (inter / (union + eps) - (areaC - union) / (areaC + eps));

        double dU = inter / ((union + eps) * (union + eps)) - 1 / (areaC + eps);
        double dI = -1 / (union + eps) - dU;                           // U depends on I with slope -1
        double dC = (union + eps) / ((areaC + eps) * (areaC + eps));
        // area of p
        double gx1 = -(y2 - y1) * dU, gx2 = (y2 - y1) * dU, gy1 = -(x2 - x1) * dU, gy2 = (x2 - x1) * dU;
        if (overlap)
        {
            double ih = yk2 - yk1, iw = xk2 - xk1;
            gx1 += -ih * dI * UpperSide(x1, g[0]);
            gx2 += ih * dI * LowerSide(x2, g[2]);
            gy1 += -iw * dI * UpperSide(y1, g[1]);
            gy2 += iw * dI * LowerSide(y2, g[3]);
        }
        double ch = yc2 - yc1, cw = xc2 - xc1;
        gx1 += -ch * dC * LowerSide(x1, g[0]);
        gx2 += ch * dC * UpperSide(x2, g[2]);
        gy1 += -cw * dC * LowerSide(y1, g[1]);
        gy2 += cw * dC * UpperSide(y2, g[3]);
        grad[0] = gx1; grad[1] = gy1; grad[2] = gx2; grad[3] = gy2;
        return loss;
    }

    /// <summary>d max(a, b) / d a: 1 when a wins, half on a tie.</summary>
    private static double UpperSide(double a, double b) => a > b ? 1 : a == b ? 0.5 : 0;

    /// <summary>d min(a, b) / d a.</summary>
    private static double LowerSide(double a, double b) => a < b ? 1 : a == b ? 0.5 : 0;

    /// <summary>Softmax cross-entropy of one row of logits against class <paramref name="label"/>;
    /// writes (softmax - onehot) * <paramref name="gradScale"/> into <paramref name="grad"/> when it is not empty.</summary>
    public static double CrossEntropy(ReadOnlySpan<float> logits, int label, double gradScale, Span<float> grad)
    {
        if ((uint)label >= (uint)logits.Length)
            throw new ArgumentOutOfRangeException(nameof(label), $"cross_entropy: label {label} outside 0..{logits.Length - 1}");
        double max = double.NegativeInfinity;
        foreach (float v in logits) max = Math.Max(max, v);
        double sum = 0;
        foreach (float v in logits) sum += Math.Exp(v - max);
        double lse = max + Math.Log(sum);
        if (!grad.IsEmpty)
        {
            for (int k = 0; k < logits.Length; k++) grad[k] += (float)((Math.Exp(logits[k] - lse) - (k == label ? 1 : 0)) * gradScale);
        }
        return lse - logits[label];
    }

    public static double Sigmoid(double x) => x >= 0 ? 1 / (1 + Math.Exp(-x)) : Math.Exp(x) / (1 + Math.Exp(x));
}
