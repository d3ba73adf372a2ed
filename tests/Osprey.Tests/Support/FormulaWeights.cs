using Osprey.Core.IO;
using Osprey.Core.Tensors;

namespace Osprey.Tests.Support;

/// <summary>tools/formula.py weight(): deterministic model parameters by torchvision state_dict name, bit for bit.</summary>
public static class FormulaWeights
{
    public static float[] For(string name, Shape shape)
    {
        var u = Formula.Values(name, shape.Numel);
        if (shape.Rank >= 2)
        {
            long fanIn = shape.Numel / shape[0];
            float bound = (float)((name.StartsWith("cls_head.", StringComparison.Ordinal) ? 1.5 : 1.0) * Math.Sqrt(3.0 / fanIn));
            for (int i = 0; i < u.Length; i++) u[i] *= bound;
            return u;
        }
        for (int i = 0; i < u.Length; i++)
        {
            float x = u[i];
            u[i] = name.EndsWith("running_var", StringComparison.Ordinal) ? 1f + 0.25f * (x + 1f)
                : name.EndsWith("running_mean", StringComparison.Ordinal) ? 0.1f * x
                : name.EndsWith("scale_weight", StringComparison.Ordinal) ? 20f + 2f * x
                : name.EndsWith(".weight", StringComparison.Ordinal) ? 1f + 0.1f * x   // 1-D weights are norm weights
                : name.EndsWith("cls_logits.bias", StringComparison.Ordinal) || name == "cls_head.8.bias" ? 2.5f * x - 3f
                : (name.StartsWith("head.classification_head.module_list.", StringComparison.Ordinal) || name.StartsWith("conf.", StringComparison.Ordinal))
                    && name.EndsWith(".bias", StringComparison.Ordinal) ? 2f * x
                : 0.1f * x;
        }
        return u;
    }

    /// <summary>A state dict holding the formula value of every expected parameter.</summary>
    public static StateDict StateDict(IReadOnlyDictionary<string, Shape> expected)
    {
        var sd = new StateDict();
        foreach (var (name, shape) in expected) sd.Add(name, Tensor.FromSpan<float>(For(name, shape), shape));
        return sd;
    }
}
