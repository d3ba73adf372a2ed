using Osprey.Core.Backends;
using Osprey.Core.IO;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;

namespace Osprey.Detection.Models;

/// <summary>
/// torchvision's MobileNetV2 (width 1.0) feature layers under torchvision's names: features.0 (3x3 stride-2 conv, BN,
/// ReLU6), features.1..17 inverted residual blocks (conv.0 = 1x1 expansion unless t = 1, then the 3x3 depthwise conv,
/// the linear 1x1 projection and its BN; identity added when stride 1 and in = out), features.18 (1x1 to 1280) and the
/// classifier. Batch norms (eps 1e-5) are folded into the convolutions. As ODTK's backbone, only features.0..17 run and
/// the outputs of features 6, 13 and 17 (C3, C4, C5: 32, 96 and 320 channels at strides 8, 16, 32) are returned;
/// features.18 and classifier.1 are declared, so a checkpoint holding them loads, but not used.
/// </summary>
public sealed class MobileNetV2 : IDisposable
{
    // (expansion t, channels c, repeats n, stride s) of torchvision's inverted_residual_setting
    private static readonly (int T, int C, int N, int S)[] s_setting =
        [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)];

    /// <summary>Feature indices whose outputs are C3, C4, C5 (ODTK's MobileNet(outputs=[6, 13, 17])).</summary>
    public static readonly int[] Outputs = [6, 13, 17];

    private readonly Conv _stem;
    private readonly List<Block> _blocks = [];

    public MobileNetV2(ParameterTable table, string prefix)
    {
        ArgumentNullException.ThrowIfNull(table);
        _stem = new Conv(table, $"{prefix}.features.0.0", 3, 32, 3, 2, 1, bias: false, batchNorm: $"{prefix}.features.0.1", activation: UnaryKind.Relu6);
        int input = 32, index = 1;
        foreach (var (t, c, n, s) in s_setting)
            for (int i = 0; i < n; i++)
            {
                _blocks.Add(new Block(table, $"{prefix}.features.{index}", input, c, i == 0 ? s : 1, t));
                input = c;
                index++;
            }
        // unused by ODTK, present in its checkpoints
        table.Add($"{prefix}.features.18.0.weight", 1280, 320, 1, 1);
        table.AddBatchNorm($"{prefix}.features.18.1", 1280);
        table.Add($"{prefix}.classifier.1.weight", 1000, 1280);
        table.Add($"{prefix}.classifier.1.bias", 1000);
    }

    /// <summary>Channels of C3, C4, C5.</summary>
    public static int[] StageChannels => [32, 96, 320];

    public void Load(StateDict weights, Device device, MemoryFormat format, DType dtype)
    {
        _stem.Load(weights, device, format, dtype);
        foreach (var b in _blocks) b.Load(weights, device, format, dtype);
    }

    /// <summary>C3, C4, C5 of a normalised [N, 3, H, W] batch.</summary>
    public Tensor[] Forward(Tensor x)
    {
        var outputs = new List<Tensor>(3);
        var y = _stem.Forward(x);
        try
        {
            for (int i = 0; i < _blocks.Count; i++)
            {
                var next = _blocks[i].Forward(y);
                if (!outputs.Contains(y)) y.Dispose();
                y = next;
                if (Array.IndexOf(Outputs, i + 1) >= 0) outputs.Add(y);
            }
        }
        catch
        {
            if (!outputs.Contains(y)) y.Dispose();
            foreach (var o in outputs) o.Dispose();
            throw;
        }
        return [.. outputs];
    }

    public void Dispose()
    {
        _stem.Dispose();
        foreach (var b in _blocks) b.Dispose();
    }

    private sealed class Block : IDisposable
    {
        private readonly Conv[] _convs;
        private readonly bool _residual;

        public Block(ParameterTable t, string p, int input, int output, int stride, int expand)
        {
            int hidden = input * expand;
            var relu6 = (UnaryOp)UnaryKind.Relu6;
            var convs = new List<Conv>();
            int k = 0;
            if (expand != 1)
            {
                convs.Add(new Conv(t, $"{p}.conv.{k}.0", input, hidden, 1, bias: false, batchNorm: $"{p}.conv.{k}.1", activation: relu6));
                k++;
            }
            convs.Add(new Conv(t, $"{p}.conv.{k}.0", hidden, hidden, 3, stride, 1, groups: hidden, bias: false, batchNorm: $"{p}.conv.{k}.1", activation: relu6));
            k++;
            convs.Add(new Conv(t, $"{p}.conv.{k}", hidden, output, 1, bias: false, batchNorm: $"{p}.conv.{k + 1}"));
            _convs = [.. convs];
            _residual = stride == 1 && input == output;
        }

        public void Load(StateDict w, Device d, MemoryFormat f, DType t)
        {
            foreach (var c in _convs) c.Load(w, d, f, t);
        }

        /// <summary>convs(x) (+ x), the add fused into the projection.</summary>
        public Tensor Forward(Tensor x)
        {
            using var scope = new TensorScope();
            var y = x;
            for (int i = 0; i < _convs.Length - 1; i++) y = _convs[i].Forward(y);
            return scope.Keep(_convs[^1].Forward(y, _residual ? x : null));
        }

        public void Dispose()
        {
            foreach (var c in _convs) c.Dispose();
        }
    }
}
