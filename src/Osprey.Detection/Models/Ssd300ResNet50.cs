using Osprey.Core.Backends;
using Osprey.Core.IO;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Detection.Boxes;

namespace Osprey.Detection.Models;

/// <summary>
/// NVIDIA DeepLearningExamples SSD300 v1.1 (PyTorch/Detection/SSD/ssd/model.py) under its state-dict names:
/// feature_extractor.feature_extractor.{0 conv1, 1 bn1, 4 layer1, 5 layer2, 6 layer3} (torchvision ResNet-50 children up to
/// layer3, layer3's first block at stride 1, so the 1024-channel source is 38x38), five additional_blocks.i
/// (1x1 conv, BN, ReLU, 3x3 conv, BN, ReLU; stride 2 pad 1 for the first three, then stride 1 pad 0), and per source
/// loc.i (4 x boxes) and conf.i (81 x boxes) 3x3 convs. Batch norms (eps 1e-5) are folded into the convolutions.
/// Head outputs follow bbox_view: per source [N, boxes * C, H, W] viewed as [N, C, boxes * H * W] (box index
/// d * H * W + y * W + x), concatenated to 8732 boxes, then transposed to Osprey's [N, 8732, C].
/// </summary>
public sealed class Ssd300ResNet50 : DetectionModel
{
    public const int Labels = 81;
    private const string F = "feature_extractor.feature_extractor";
    private static readonly int[] s_channels = [1024, 512, 512, 256, 256, 256];
    private static readonly int[] s_middle = [256, 256, 128, 128, 128];

    private readonly Conv _stem;
    private readonly List<ResNet.Block> _blocks = [];
    private readonly Conv[][] _extra = new Conv[5][];
    private readonly Conv[] _loc = new Conv[6], _conf = new Conv[6];

    public Ssd300ResNet50() : base("ssd300_resnet50", Labels)
    {
        _stem = new Conv(Parameters, $"{F}.0", 3, 64, 7, 2, 3, bias: false, batchNorm: $"{F}.1", activation: UnaryKind.Relu);
        int inplanes = 64;
        int[] counts = [3, 4, 6];
        for (int s = 0; s < 3; s++)
        {
            int planes = 64 << s;
            for (int i = 0; i < counts[s]; i++)
            {
                int stride = i == 0 && s == 1 ? 2 : 1;   // layer2 halves; layer3's first block was changed to stride 1
                _blocks.Add(new ResNet.Block(Parameters, $"{F}.{s + 4}.{i}", inplanes, planes, stride, bottleneck: true, down: i == 0));
                inplanes = planes * 4;
            }
        }
        var relu = (UnaryOp)UnaryKind.Relu;
        for (int i = 0; i < 5; i++)
        {
            string p = $"additional_blocks.{i}";
            (int stride, int pad) = i < 3 ? (2, 1) : (1, 0);
            _extra[i] =
            [
                new Conv(Parameters, $"{p}.0", s_channels[i], s_middle[i], 1, bias: false, batchNorm: $"{p}.1", activation: relu),
                new Conv(Parameters, $"{p}.3", s_middle[i], s_channels[i + 1], 3, stride, pad, bias: false, batchNorm: $"{p}.4", activation: relu),
            ];
        }
        for (int i = 0; i < 6; i++)
        {
            int boxes = NvidiaDefaultBoxes.BoxesPerLocation(i);
            _loc[i] = new Conv(Parameters, $"loc.{i}", s_channels[i], boxes * 4, 3, 1, 1);
            _conf[i] = new Conv(Parameters, $"conf.{i}", s_channels[i], boxes * Labels, 3, 1, 1);
        }
    }

    private IEnumerable<Conv> Convs => _extra.SelectMany(e => e).Concat(_loc).Concat(_conf).Prepend(_stem);

    protected override void LoadChecked(StateDict weights, Device device, MemoryFormat format, DType dtype)
    {
        foreach (var c in Convs) c.Load(weights, device, format, dtype);
        foreach (var b in _blocks) b.Load(weights, device, format, dtype);
    }

    public override HeadOutputs Forward(Tensor images, bool keepFeatures = false)
    {
        ArgumentNullException.ThrowIfNull(images);
        var sources = new Tensor[6];
        using var scope = new TensorScope();
        var x = Op.MaxPool2d(_stem.Forward(images), Pool2dParams.Square(3, 2, 1));
        foreach (var b in _blocks) x = b.Forward(x);
        sources[0] = x;
        for (int i = 0; i < 5; i++)
        {
            x = _extra[i][1].Forward(_extra[i][0].Forward(x));
            sources[i + 1] = x;
        }
        var locs = new Tensor[6];
        var confs = new Tensor[6];
        var grids = new ImageSize[6];
        int n = images.Shape[0];
        for (int i = 0; i < 6; i++)
        {
            grids[i] = new ImageSize(sources[i].Shape[2], sources[i].Shape[3]);
            locs[i] = Op.Contiguous(_loc[i].Forward(sources[i])).Reshape(n, 4, -1);
            confs[i] = Op.Contiguous(_conf[i].Forward(sources[i])).Reshape(n, Labels, -1);
        }
        var cls = scope.Keep(Op.Contiguous(Op.Concat(confs, 2).Permute(0, 2, 1)));
        var reg = scope.Keep(Op.Contiguous(Op.Concat(locs, 2).Permute(0, 2, 1)));
        if (keepFeatures) foreach (var s in sources) scope.Keep(s);
        return new HeadOutputs(cls, reg, grids, keepFeatures ? sources : null);
    }

    public override void Dispose()
    {
        foreach (var c in Convs) c.Dispose();
        foreach (var b in _blocks) b.Dispose();
    }
}
