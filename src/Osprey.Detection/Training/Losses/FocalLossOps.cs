using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;

namespace Osprey.Detection.Training.Losses;

/// <summary>
/// The RetinaNet classification loss and its gradient composed of <see cref="Op"/> calls, so it runs where the logits are
/// (the GPU in training) and only per-anchor labels and weights cross to the device. Same formulas as
/// <see cref="LossFunctions.SigmoidFocal"/>, in float32:
/// t = [label == class]; e = exp(-|x|); p = sigmoid(x); ce = relu(x) - t x + log(1 + e); q = 1 - p_t = p + t - 2 p t;
/// a_t = (1 - alpha) + (2 alpha - 1) t; loss = w a_t ce q^gamma; grad = w a_t ((p - t) q^gamma + ce gamma q^(gamma-1) dq),
/// dq = (1 - 2t) p (1 - p).
/// </summary>
public static class FocalLossOps
{
    /// <summary>Returns the weighted loss sum and d loss / d logits (float32, the logits' shape and device).</summary>
    /// <param name="logits">[N, A, K], any floating dtype (computed in float32).</param>
    /// <param name="labels">[N, A] target class per anchor, -1 for none (host values).</param>
    /// <param name="weights">[N, A] per-anchor weight, 0 for ignored anchors (host values).</param>
    public static (double Loss, Tensor Grad) SigmoidFocal(Tensor logits, ReadOnlySpan<float> labels, ReadOnlySpan<float> weights, float alpha, float gamma)
    {
        ArgumentNullException.ThrowIfNull(logits);
        if (logits.Rank != 3) throw new ArgumentException($"focal loss: logits {logits.Shape} (need [N, A, K])");
        int n = logits.Shape[0], a = logits.Shape[1], k = logits.Shape[2];
        if (labels.Length != (long)n * a || weights.Length != (long)n * a)
            throw new ArgumentException($"focal loss: {labels.Length} labels and {weights.Length} weights for {n} x {a} anchors");
        if (gamma < 0) throw new ArgumentOutOfRangeException(nameof(gamma), $"focal loss: gamma {gamma} must be >= 0");
        using var scope = new TensorScope();
        var dev = logits.Device;
        var x = logits.DType == DType.Float32 ? logits : Op.Cast(logits, DType.Float32);
        var label = Tensor.FromSpan(labels, new Shape(n, a, 1), dev);
        var w = Tensor.FromSpan(weights, new Shape(n, a, 1), dev);
        var classes = new float[k];
        for (int c = 0; c < k; c++) classes[c] = c;
        var cls = Tensor.FromSpan<float>(classes, new Shape(1, 1, k), dev);
        var t = Op.Cast(Op.Binary(BinaryOp.Eq, label, cls), DType.Float32);
        var e = Op.Exp(Op.Neg(Op.Abs(x)));
        var p = Op.Sigmoid(x);
        var ce = Op.Add(Op.Sub(Op.Relu(x), Op.Mul(t, x)), Op.Log(Op.Binary(BinaryOp.Add, e, 1.0)));
        var pt = Op.Mul(p, t);
        var q = Op.Sub(Op.Add(p, t), Op.Binary(BinaryOp.Mul, pt, 2.0));
        var at = Op.Binary(BinaryOp.Add, Op.Binary(BinaryOp.Mul, t, 2.0 * alpha - 1), 1.0 - alpha);
        var aw = Op.Mul(at, w);
        Tensor mod, dmodDq;
        if (gamma == 2) { mod = Op.Mul(q, q); dmodDq = Op.Binary(BinaryOp.Mul, q, 2.0); }
        else if (gamma == 0) { mod = Op.Binary(BinaryOp.Add, Op.Binary(BinaryOp.Mul, q, 0.0), 1.0); dmodDq = Op.Binary(BinaryOp.Mul, q, 0.0); }
        else { mod = Op.Binary(BinaryOp.Pow, q, gamma); dmodDq = Op.Binary(BinaryOp.Mul, Op.Binary(BinaryOp.Pow, q, gamma - 1), gamma); }
        var loss = Op.Mul(Op.Mul(aw, ce), mod);
        // dq/dx = (1 - 2t) p (1 - p)
        var dq = Op.Mul(Op.Binary(BinaryOp.Add, Op.Binary(BinaryOp.Mul, t, -2.0), 1.0), Op.Sub(p, Op.Mul(p, p)));
        var grad = Op.Mul(aw, Op.Add(Op.Mul(Op.Sub(p, t), mod), Op.Mul(ce, Op.Mul(dmodDq, dq))));
        double sum = Op.Sum(loss).Item<float>();
        return (sum, scope.Keep(grad));
    }
}
