using Osprey.Core.IO;
using Osprey.Core.Tensors;
using Osprey.Detection.Models;

namespace Osprey.Engine;

/// <summary>
/// Deterministic stand-in weights for benchmarks without a checkpoint (`osprey bench --arch NAME`): uniform values from a
/// seeded generator per parameter, scaled by fan-in for weights, batch-norm statistics kept near identity, classification
/// biases negative (RetinaNet) or the background logit high (SSD), so few scores pass the threshold, as with trained weights. Timing only: the detections mean nothing.
/// </summary>
public static class SeededWeights
{
    public static StateDict For(Architecture architecture, int seed = 1)
    {
        ArgumentNullException.ThrowIfNull(architecture);
        using var probe = architecture.Create();
        int classes = probe.Classes;
        var sd = new StateDict();
        foreach (var (name, shape) in probe.Parameters.Expected)
        {
            var rng = new Random(unchecked(seed * 1_000_003 + Stable(name))); // not HashCode.Combine: randomised per process
            var v = new float[shape.Numel];
            float bound = shape.Rank >= 2 ? (float)Math.Sqrt(3.0 / (shape.Numel / shape[0])) : 0.1f;
            for (int i = 0; i < v.Length; i++)
            {
                float x = (float)(rng.NextDouble() * 2 - 1);
                v[i] = shape.Rank >= 2 ? bound * x
                    : name.EndsWith("running_var", StringComparison.Ordinal) ? 1f + 0.25f * (x + 1f)
                    : name.EndsWith("scale_weight", StringComparison.Ordinal) ? 20f + 2f * x
                    : name.EndsWith("cls_logits.bias", StringComparison.Ordinal) ? x - 4.6f
                    : name.StartsWith("head.classification_head.module_list.", StringComparison.Ordinal) && name.EndsWith(".bias", StringComparison.Ordinal)
                        ? (i % classes == 0 ? 6f : 0.1f * x)   // SSD: background logit high, so few softmax scores pass the threshold
                    : name.EndsWith(".weight", StringComparison.Ordinal) ? 1f + 0.1f * x
                    : 0.1f * x;
            }
            sd.Add(name, Tensor.FromSpan<float>(v, shape));
        }
        return sd;
    }

    /// <summary>FNV-1a of the name: string.GetHashCode is randomised per process.</summary>
    private static int Stable(string s)
    {
        uint h = 2166136261;
        foreach (char c in s) h = (h ^ c) * 16777619;
        return (int)h;
    }
}
