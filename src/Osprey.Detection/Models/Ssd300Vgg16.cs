using Osprey.Core.Backends;
using Osprey.Core.IO;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Detection.Boxes;

namespace Osprey.Detection.Models;

/// <summary>
/// torchvision's ssd300_vgg16: VGG16 features up to conv4_3 (backbone.features.*), an L2 normalisation scaled by
/// backbone.scale_weight, the fc6/fc7 replacement (dilated conv) and four extra blocks (backbone.extra.*), and
/// one 3x3 classification and regression conv per source (head.*.module_list.i). Six sources, 8732 boxes at 300x300.
/// </summary>
public sealed class Ssd300Vgg16 : DetectionModel
{
    private static readonly int[] s_boxes = [4, 6, 6, 6, 4, 4];
    private static readonly int[] s_sourceChannels = [512, 1024, 512, 256, 256, 256];

    // features: conv indices and channels; a max pool follows after indices 2, 7 and 14 (the third with ceil_mode)
    private static readonly (int Index, int In, int Out)[] s_features =
        [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256), (14, 256, 256), (17, 256, 512), (19, 512, 512), (21, 512, 512)];

    private readonly List<Conv> _features = [];
    private readonly Conv[] _extra0;
    private readonly Conv[][] _extras;
    private readonly Conv[] _cls = new Conv[6], _reg = new Conv[6];
    private Tensor? _scale;

    public Ssd300Vgg16(int classes = 91) : base("ssd300_vgg16", classes)
    {
        var relu = (UnaryOp)UnaryKind.Relu;
        Parameters.Add("backbone.scale_weight", 512);
        foreach (var (i, cin, cout) in s_features)
            _features.Add(new Conv(Parameters, $"backbone.features.{i}", cin, cout, 3, 1, 1, activation: relu));
        _extra0 =
        [
            new Conv(Parameters, "backbone.extra.0.1", 512, 512, 3, 1, 1, activation: relu),
            new Conv(Parameters, "backbone.extra.0.3", 512, 512, 3, 1, 1, activation: relu),
            new Conv(Parameters, "backbone.extra.0.5", 512, 512, 3, 1, 1, activation: relu),
            new Conv(Parameters, "backbone.extra.0.7.1", 512, 1024, 3, 1, 6, dilation: 6, activation: relu),
            new Conv(Parameters, "backbone.extra.0.7.3", 1024, 1024, 1, activation: relu),
        ];
        _extras =
        [
            [new Conv(Parameters, "backbone.extra.1.0", 1024, 256, 1, activation: relu), new Conv(Parameters, "backbone.extra.1.2", 256, 512, 3, 2, 1, activation: relu)],
            [new Conv(Parameters, "backbone.extra.2.0", 512, 128, 1, activation: relu), new Conv(Parameters, "backbone.extra.2.2", 128, 256, 3, 2, 1, activation: relu)],
            [new Conv(Parameters, "backbone.extra.3.0", 256, 128, 1, activation: relu), new Conv(Parameters, "backbone.extra.3.2", 128, 256, 3, 1, 0, activation: relu)],
            [new Conv(Parameters, "backbone.extra.4.0", 256, 128, 1, activation: relu), new Conv(Parameters, "backbone.extra.4.2", 128, 256, 3, 1, 0, activation: relu)],
        ];
        for (int i = 0; i < 6; i++)
        {
            _cls[i] = new Conv(Parameters, $"head.classification_head.module_list.{i}", s_sourceChannels[i], s_boxes[i] * classes, 3, 1, 1);
            _reg[i] = new Conv(Parameters, $"head.regression_head.module_list.{i}", s_sourceChannels[i], s_boxes[i] * 4, 3, 1, 1);
        }
    }

    private IEnumerable<Conv> AllConvs => _features.Concat(_extra0).Concat(_extras.SelectMany(e => e)).Concat(_cls).Concat(_reg);

    protected override void LoadChecked(StateDict weights, Device device, MemoryFormat format, DType dtype)
    {
        foreach (var c in AllConvs) c.Load(weights, device, format, dtype);
        _scale?.Dispose();
        using var s = Op.Cast(weights["backbone.scale_weight"], DType.Float32);
        using var s4 = s.Reshape(1, 512, 1, 1);
        _scale = Op.To(s4, device);
    }

    /// <summary>backbone.scale_weight as the [1, 512, 1, 1] float32 tensor the L2 normalisation multiplies by (trainable).</summary>
    public override IReadOnlyList<(string Name, Tensor Value)> ExtraParameters => _scale is null ? [] : [("backbone.scale_weight", _scale)];

    public override HeadOutputs Forward(Tensor images, bool keepFeatures = false)
    {
        if (_scale is null) throw new InvalidOperationException("ssd300_vgg16: weights not loaded");
        var sources = new Tensor[6];
        using var scope = new TensorScope();
        var x = images;
        for (int i = 0; i < _features.Count; i++)
        {
            x = _features[i].Forward(x);
            int idx = s_features[i].Index;
            if (idx is 2 or 7) x = Op.MaxPool2d(x, Pool2dParams.Square(2, 2));
            else if (idx == 14) x = Op.MaxPool2d(x, Pool2dParams.Square(2, 2, ceilMode: true));
        }
        sources[0] = L2Normalize(x);
        x = Op.MaxPool2d(x, Pool2dParams.Square(2, 2));
        for (int i = 0; i < 3; i++) x = _extra0[i].Forward(x);
        x = Op.MaxPool2d(x, Pool2dParams.Square(3, 1, 1));
        x = _extra0[3].Forward(x);
        x = _extra0[4].Forward(x);
        sources[1] = x;
        for (int e = 0; e < 4; e++)
        {
            x = _extras[e][1].Forward(_extras[e][0].Forward(x));
            sources[e + 2] = x;
        }
        var logits = new Tensor[6];
        var regs = new Tensor[6];
        var grids = new ImageSize[6];
        for (int i = 0; i < 6; i++)
        {
            grids[i] = new ImageSize(sources[i].Shape[2], sources[i].Shape[3]);
            logits[i] = Flatten(_cls[i].Forward(sources[i]), Classes);
            regs[i] = Flatten(_reg[i].Forward(sources[i]), 4);
        }
        var cls = scope.Keep(Op.Concat(logits, 1));
        var reg = scope.Keep(Op.Concat(regs, 1));
        if (keepFeatures) foreach (var s in sources) scope.Keep(s);
        return new HeadOutputs(cls, reg, grids, keepFeatures ? sources : null);
    }

    /// <summary>
    /// scale_weight * F.normalize(x, dim=1): x / max(||x||_2 over channels, 1e-12). Always in float32 (the scale stays
    /// float32 too): in float16 the sum of 512 squares overflows; the result is cast back to the network's precision.
    /// </summary>
    private Tensor L2Normalize(Tensor x)
    {
        using var scope = new TensorScope();
        var x32 = x.DType == DType.Float32 ? x : Op.Cast(x, DType.Float32);
        var sq = Op.Mul(x32, x32);
        var norm = Op.Sqrt(Op.Sum(sq, [1], keepDims: true));
        var clamped = Op.Binary(BinaryOp.Max, norm, 1e-12);
        var n = Op.Div(x32, clamped);
        var y = Op.Mul(_scale!, n);
        if (x.DType != DType.Float32) y = Op.Cast(y, x.DType);
        return scope.Keep(Op.Contiguous(y, Format));
    }

    public override void Dispose()
    {
        foreach (var c in AllConvs) c.Dispose();
        _scale?.Dispose();
        _scale = null;
    }
}
