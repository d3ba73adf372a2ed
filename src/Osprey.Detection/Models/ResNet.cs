using Osprey.Core.Backends;
using Osprey.Core.IO;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;

namespace Osprey.Detection.Models;

/// <summary>
/// torchvision's ResNet body (no pooling head): conv1/bn1/relu/maxpool and layer1..layer4 of BasicBlocks
/// (ResNet-18/34) or Bottlenecks with the stride on the 3x3 (ResNet-50/101/152, "v1.5"). Batch norms are
/// FrozenBatchNorm2d, folded into the convolutions. Returns C3, C4, C5 (outputs of layer2..layer4).
/// <see cref="ResNetShape"/> also describes narrower bodies with the same structure and names.
/// </summary>
public sealed class ResNet : IDisposable
{
    private readonly Conv _stem;
    private readonly List<Block> _blocks = [];
    private readonly int[] _stageEnds = new int[4];

    public ResNet(ParameterTable table, string prefix, int depth) : this(table, prefix, ResNetShape.Depth(depth))
    {
    }

    /// <summary>A body of any <see cref="ResNetShape"/> (torchvision's depths, or a narrow one such as the demo's).</summary>
    public ResNet(ParameterTable table, string prefix, ResNetShape shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        shape.Check();
        int stem = shape.StemChannels;
        _stem = new Conv(table, $"{prefix}.conv1", 3, stem, shape.StemKernel, 2, shape.StemKernel / 2, bias: false, batchNorm: $"{prefix}.bn1", activation: UnaryKind.Relu);
        int expansion = shape.Bottleneck ? 4 : 1;
        int inplanes = stem;
        for (int s = 0; s < 4; s++)
        {
            int planes = shape.Widths[s];
            for (int i = 0; i < shape.Blocks[s]; i++)
            {
                int stride = i == 0 && s > 0 ? 2 : 1;
                string p = $"{prefix}.layer{s + 1}.{i}";
                bool down = i == 0 && (stride != 1 || inplanes != planes * expansion);
                _blocks.Add(new Block(table, p, inplanes, planes, stride, shape.Bottleneck, down));
                inplanes = planes * expansion;
            }
            _stageEnds[s] = _blocks.Count;
        }
        StageChannels = [shape.Widths[1] * expansion, shape.Widths[2] * expansion, shape.Widths[3] * expansion];
    }

    /// <summary>Channels of C3, C4, C5.</summary>
    public int[] StageChannels { get; }

    public void Load(StateDict weights, Device device, MemoryFormat format, DType dtype)
    {
        _stem.Load(weights, device, format, dtype);
        foreach (var b in _blocks) b.Load(weights, device, format, dtype);
    }

    /// <summary>C3, C4, C5 of a normalised [N, 3, H, W] batch.</summary>
    public Tensor[] Forward(Tensor x)
    {
        var outputs = new Tensor[3];
        var y = _stem.Forward(x);
        using (var stem = y) y = Op.MaxPool2d(stem, Pool2dParams.Square(3, 2, 1));
        for (int i = 0; i < _blocks.Count; i++)
        {
            var next = _blocks[i].Forward(y);
            if (Array.IndexOf(outputs, y) < 0) y.Dispose();   // activations go as soon as the next block has them
            y = next;
            for (int s = 1; s < 4; s++)
                if (i == _stageEnds[s] - 1) outputs[s - 1] = y;
        }
        return outputs;
    }

    public void Dispose()
    {
        _stem.Dispose();
        foreach (var b in _blocks) b.Dispose();
    }

    internal sealed class Block : IDisposable
    {
        private readonly Conv[] _convs;
        private readonly Conv? _down;

        public Block(ParameterTable t, string p, int inplanes, int planes, int stride, bool bottleneck, bool down)
        {
            var relu = (UnaryOp)UnaryKind.Relu;
            if (bottleneck)
            {
                _convs =
                [
                    new Conv(t, $"{p}.conv1", inplanes, planes, 1, bias: false, batchNorm: $"{p}.bn1", activation: relu),
                    new Conv(t, $"{p}.conv2", planes, planes, 3, stride, 1, bias: false, batchNorm: $"{p}.bn2", activation: relu),
                    new Conv(t, $"{p}.conv3", planes, planes * 4, 1, bias: false, batchNorm: $"{p}.bn3", activation: relu),
                ];
            }
            else
            {
                _convs =
                [
                    new Conv(t, $"{p}.conv1", inplanes, planes, 3, stride, 1, bias: false, batchNorm: $"{p}.bn1", activation: relu),
                    new Conv(t, $"{p}.conv2", planes, planes, 3, 1, 1, bias: false, batchNorm: $"{p}.bn2", activation: relu),
                ];
            }
            if (down)
                _down = new Conv(t, $"{p}.downsample.0", inplanes, _convs[^1].OutChannels, 1, stride, bias: false, batchNorm: $"{p}.downsample.1");
        }

        public void Load(StateDict w, Device d, MemoryFormat f, DType t)
        {
            foreach (var c in _convs) c.Load(w, d, f, t);
            _down?.Load(w, d, f, t);
        }

        /// <summary>relu(convs(x) + identity), the add and relu fused into the last convolution.</summary>
        public Tensor Forward(Tensor x)
        {
            using var scope = new TensorScope();
            var identity = _down is null ? x : _down.Forward(x);
            var y = x;
            for (int i = 0; i < _convs.Length - 1; i++) y = _convs[i].Forward(y);
            return scope.Keep(_convs[^1].Forward(y, identity));
        }

        public void Dispose()
        {
            foreach (var c in _convs) c.Dispose();
            _down?.Dispose();
        }
    }
}

/// <summary>
/// The shape of a ResNet body: block kind, blocks and planes per stage (layer1..layer4), and the stem (a kernel x kernel
/// stride-2 convolution with batch norm and ReLU, then a 3x3 stride-2 max pool).
/// </summary>
public sealed record ResNetShape(bool Bottleneck, int[] Blocks, int[] Widths, int StemChannels = 64, int StemKernel = 7)
{
    /// <summary>torchvision's resnet18/34/50/101/152.</summary>
    public static ResNetShape Depth(int depth) => depth switch
    {
        18 => new(false, [2, 2, 2, 2], s_widths),
        34 => new(false, [3, 4, 6, 3], s_widths),
        50 => new(true, [3, 4, 6, 3], s_widths),
        101 => new(true, [3, 4, 23, 3], s_widths),
        152 => new(true, [3, 8, 36, 3], s_widths),
        _ => throw new ArgumentException($"resnet depth {depth} is not one of 18, 34, 50, 101, 152"),
    };

    private static readonly int[] s_widths = [64, 128, 256, 512];

    internal void Check()
    {
        if (Blocks is not { Length: 4 } || Widths is not { Length: 4 } || Blocks.Any(b => b < 1) || Widths.Any(w => w < 1)
            || StemChannels < 1 || StemKernel < 1 || StemKernel % 2 == 0)
            throw new ArgumentException($"resnet shape: blocks [{string.Join(", ", Blocks ?? [])}], widths [{string.Join(", ", Widths ?? [])}], " +
                $"stem {StemChannels} channels {StemKernel}x{StemKernel} (need 4 stages of >= 1 block and >= 1 plane, an odd stem kernel)");
    }
}
