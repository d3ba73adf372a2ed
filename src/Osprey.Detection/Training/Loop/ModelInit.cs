using Osprey.Core.IO;
using Osprey.Core.Tensors;
using Osprey.Detection.Models;

namespace Osprey.Detection.Training.Loop;

/// <summary>
/// Initial weights for training from scratch, as torchvision initialises RetinaNet: ResNet convolutions Kaiming-normal
/// (fan_out, relu) with batch norm at identity (weight 1, bias 0, mean 0, var 1) and the last batch norm of each residual
/// block at zero (zero_init_residual, so every block starts as the identity: stable without trainable batch norm); FPN
/// convolutions Kaiming-uniform (a = 1), bias 0; head convolutions normal(0, 0.01), bias 0, the classification logits' bias
/// -log((1 - 0.01) / 0.01). ssd300_vgg16 as torchvision's SSD: VGG convolutions Kaiming-normal (fan_out, relu), the fc6/fc7
/// replacement, extra blocks and heads Xavier-uniform, biases 0, the L2Norm scale 20. Seeded.
/// </summary>
public static class ModelInit
{
    public static StateDict Random(DetectionModel model, int seed)
    {
        ArgumentNullException.ThrowIfNull(model);
        var rng = new Random(seed);
        var dict = new StateDict();
        var lastBn = LastBatchNormOfBlocks(model.Parameters.Expected.Keys);
        bool ssd = model is Ssd300Vgg16;
        foreach (var (name, shape) in model.Parameters.Expected)
        {
            var data = new float[shape.Numel];
            if (ssd && name == "backbone.scale_weight") Array.Fill(data, 20f);
            else if (ssd && shape.Rank == 4 && IsSsdXavier(name))
            {
                int fanIn = shape[1] * shape[2] * shape[3], fanOut = shape[0] * shape[2] * shape[3];
                double bound = Math.Sqrt(6.0 / (fanIn + fanOut));
                for (int i = 0; i < data.Length; i++) data[i] = (float)((rng.NextDouble() * 2 - 1) * bound);
            }
            else if (name.EndsWith(".running_var", StringComparison.Ordinal)) Array.Fill(data, 1f);
            else if (name.EndsWith(".running_mean", StringComparison.Ordinal)) { }
            else if (IsBatchNormWeight(name, model)) { if (!lastBn.Contains(name[..^".weight".Length])) Array.Fill(data, 1f); }
            else if (name.EndsWith(".bias", StringComparison.Ordinal))
            {
                if (name.Contains("cls_logits", StringComparison.Ordinal)) Array.Fill(data, (float)-Math.Log((1 - 0.01) / 0.01));
            }
            else if (shape.Rank == 4)
            {
                int fanIn = shape[1] * shape[2] * shape[3], fanOut = shape[0] * shape[2] * shape[3];
                if (name.StartsWith("head.", StringComparison.Ordinal)) Normal(rng, data, 0.01);
                else if (name.StartsWith("backbone.fpn", StringComparison.Ordinal))
                {
                    double bound = Math.Sqrt(3.0 / fanIn);
                    for (int i = 0; i < data.Length; i++) data[i] = (float)((rng.NextDouble() * 2 - 1) * bound);
                }
                else Normal(rng, data, Math.Sqrt(2.0 / fanOut));
            }
            dict.Add(name, Tensor.FromSpan<float>(data, shape));
        }
        return dict;
    }

    /// <summary>torchvision's SSD applies _xavier_init to the heads, the fc6/fc7 replacement (extra.0.7) and extra blocks 1-4;
    /// the VGG convolutions moved into extra.0 (conv5_x) keep VGG's Kaiming init.</summary>
    private static bool IsSsdXavier(string name) =>
        name.StartsWith("head.", StringComparison.Ordinal)
        || name.StartsWith("backbone.extra.0.7.", StringComparison.Ordinal)
        || (name.StartsWith("backbone.extra.", StringComparison.Ordinal) && !name.StartsWith("backbone.extra.0.", StringComparison.Ordinal));

    private static bool IsBatchNormWeight(string name, DetectionModel model)
    {
        if (!name.EndsWith(".weight", StringComparison.Ordinal)) return false;
        string prefix = name[..^".weight".Length];
        return model.Parameters.Expected.ContainsKey(prefix + ".running_var");
    }

    /// <summary>"backbone.body.layerL.B.bnK" with the largest K of each block (bn2 in basic blocks, bn3 in bottlenecks).</summary>
    private static HashSet<string> LastBatchNormOfBlocks(IEnumerable<string> names)
    {
        var best = new Dictionary<string, (int K, string Name)>(StringComparer.Ordinal);
        foreach (string n in names)
        {
            if (!n.EndsWith(".running_var", StringComparison.Ordinal) || !n.Contains(".layer", StringComparison.Ordinal)) continue;
            string bn = n[..^".running_var".Length];
            int dot = bn.LastIndexOf('.');
            string last = bn[(dot + 1)..];
            if (!last.StartsWith("bn", StringComparison.Ordinal) || !int.TryParse(last.AsSpan(2), out int k)) continue;
            string block = bn[..dot];
            if (!best.TryGetValue(block, out var b) || k > b.K) best[block] = (k, bn);
        }
        return best.Values.Select(v => v.Name).ToHashSet(StringComparer.Ordinal);
    }

    private static void Normal(Random rng, float[] data, double std)
    {
        for (int i = 0; i < data.Length; i++)
        {
            double u1 = 1 - rng.NextDouble(), u2 = rng.NextDouble();
            data[i] = (float)(std * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
    }
}
