using Osprey.Core.Backends;
using Osprey.Core.IO;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;

namespace Osprey.Detection.Models;

/// <summary>
/// torchvision's ResNet body (no pooling head): conv1/bn1/relu/maxpool and layer1..layer4 of BasicBlocks
/// (ResNet-18/34) or Bottlenecks with the stride on the 3x3 (ResNet-50/101/152, "v1.5"). Batch norms are
/// FrozenBatchNorm2d, folded into the convolutions. Returns C3, C4, C5 (outputs of layer2..layer4).
/// </summary>
public sealed class ResNet : IDisposable
{
    private readonly Conv _stem;
    private readonly List<Block> _blocks = [];
    private readonly int[] _stageEnds = new int[4];

    public ResNet(ParameterTable table, string prefix, int depth)
    {
        (bool bottleneck, int[] counts) = depth switch
        {
            18 => (false, new[] { 2, 2, 2, 2 }),
            34 => (false, new[] { 3, 4, 6, 3 }),
            50 => (true, new[] { 3, 4, 6, 3 }),
            101 => (true, new[] { 3, 4, 23, 3 }),
            152 => (true, new[] { 3, 8, 36, 3 }),
            _ => throw new ArgumentException($"resnet depth {depth} is not one of 18, 34, 50, 101, 152"),
        };
        _stem = new Conv(table, $"{prefix}.conv1", 3, 64, 7, 2, 3, bias: false, batchNorm: $"{prefix}.bn1", activation: UnaryKind.Relu);
        int expansion = bottleneck ? 4 : 1;
        int inplanes = 64;
        for (int s = 0; s < 4; s++)
        {
            int planes = 64 << s;
            for (int i = 0; i < counts[s]; i++)
            {
                int stride = i == 0 && s > 0 ? 2 : 1;
                string p = $"{prefix}.layer{s + 1}.{i}";
                bool down = i == 0 && (stride != 1 || inplanes != planes * expansion);
                _blocks.Add(new Block(table, p, inplanes, planes, stride, bottleneck, down));
                inplanes = planes * expansion;
            }
            _stageEnds[s] = _blocks.Count;
        }
        StageChannels = [128 * expansion, 256 * expansion, 512 * expansion];
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
