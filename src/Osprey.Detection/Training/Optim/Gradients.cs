using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;

namespace Osprey.Detection.Training.Optim;

/// <summary>Whole-model gradient operations through <see cref="Op"/> (any device).</summary>
public static class Gradients
{
    /// <summary>torch.nn.utils.clip_grad_norm_ (L2): the global norm is the norm of the per-tensor norms; every gradient is
    /// multiplied in place by min(1, maxNorm / (norm + 1e-6)). Returns the norm before clipping (NaN or infinity pass
    /// through: the gradients are then scaled by NaN as in torch, so check <see cref="AllFinite"/> first under AMP).</summary>
    public static double ClipByGlobalNorm(IReadOnlyList<Tensor> grads, double maxNorm)
    {
        ArgumentNullException.ThrowIfNull(grads);
        if (!(maxNorm > 0)) throw new ArgumentOutOfRangeException(nameof(maxNorm), $"clip_grad_norm: max norm {maxNorm} must be > 0");
        double sumSquares = 0;
        foreach (var g in grads)
        {
            using var scope = new TensorScope();
            var x = g.DType == DType.Float32 ? g : Op.Cast(g, DType.Float32);
            float n = MathF.Sqrt(Op.Sum(Op.Mul(x, x)).Item<float>());
            sumSquares += (double)n * n;
        }
        double norm = Math.Sqrt(sumSquares);
        double coef = Math.Min(1.0, maxNorm / (norm + 1e-6));
        Scale(grads, coef);
        return norm;
    }

    /// <summary>Multiplies every gradient in place by <paramref name="factor"/> (in each gradient's dtype).</summary>
    public static void Scale(IReadOnlyList<Tensor> grads, double factor)
    {
        ArgumentNullException.ThrowIfNull(grads);
        foreach (var g in grads)
        {
            using var scope = new TensorScope();
            Op.CopyInto(Op.Binary(BinaryOp.Mul, g, factor), g);
        }
    }

    /// <summary>Whether every element of every gradient is finite (one reduction per tensor: sum(g * 0) is NaN exactly when
    /// some element is infinite or NaN).</summary>
    public static bool AllFinite(IReadOnlyList<Tensor> grads)
    {
        ArgumentNullException.ThrowIfNull(grads);
        foreach (var g in grads)
        {
            using var scope = new TensorScope();
            var x = g.DType == DType.Float32 ? g : Op.Cast(g, DType.Float32);
            if (float.IsNaN(Op.Sum(Op.Binary(BinaryOp.Mul, x, 0)).Item<float>())) return false;
        }
        return true;
    }
}
