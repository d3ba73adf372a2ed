using Osprey.Core.Backends;
using Osprey.Core.IO;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Detection.Boxes;

namespace Osprey.Detection.Models;

/// <summary>
/// NVIDIA ODTK's RetinaNet with the MobileNetV2-FPN backbone (odtk/model.py, odtk/backbones/fpn.py, mobilenet.py), under
/// ODTK's state-dict names: backbones.MobileNetV2FPN.features.* (torchvision MobileNetV2), backbones.MobileNetV2FPN.
/// lateral3/4/5, smooth3/4/5, pyramid6 (3x3 stride 2 on C5), pyramid7 (on relu(P6)), and the heads cls_head.{0,2,4,6,8}
/// and box_head.{0,2,4,6,8} (4 conv + ReLU, then the output conv), 9 anchors, 80 classes without background.
/// The top-down path is nearest 2x upsampling added to the lateral (ODTK pads inputs to its 128-pixel stride, so the
/// sizes always halve exactly). Returns logits (the sigmoid is the post-processor's).
/// </summary>
public sealed class OdtkRetinaNet : DetectionModel
{
    public const string BackboneName = "MobileNetV2FPN";
    private const string P = "backbones." + BackboneName;

    private readonly OdtkAnchors _anchors = OdtkAnchors.Default();
    private readonly MobileNetV2 _body;
    private readonly Conv[] _lateral = new Conv[3], _smooth = new Conv[3];
    private readonly Conv _p6, _p7;
    private readonly Conv[] _cls = new Conv[5], _box = new Conv[5];

    public OdtkRetinaNet(string architecture = "retinanet_mobilenetv2_fpn", int classes = 80) : base(architecture, classes)
    {
        _body = new MobileNetV2(Parameters, $"{P}.features");
        var c = MobileNetV2.StageChannels;
        for (int i = 0; i < 3; i++)
        {
            _lateral[i] = new Conv(Parameters, $"{P}.lateral{i + 3}", c[i], 256, 1);
            _smooth[i] = new Conv(Parameters, $"{P}.smooth{i + 3}", 256, 256, 3, 1, 1);
        }
        _p6 = new Conv(Parameters, $"{P}.pyramid6", c[2], 256, 3, 2, 1);
        _p7 = new Conv(Parameters, $"{P}.pyramid7", 256, 256, 3, 2, 1);
        int a = _anchors.AnchorsPerLocation;
        for (int i = 0; i < 4; i++)
        {
            _cls[i] = new Conv(Parameters, $"cls_head.{2 * i}", 256, 256, 3, 1, 1, activation: UnaryKind.Relu);
            _box[i] = new Conv(Parameters, $"box_head.{2 * i}", 256, 256, 3, 1, 1, activation: UnaryKind.Relu);
        }
        _cls[4] = new Conv(Parameters, "cls_head.8", 256, a * classes, 3, 1, 1);
        _box[4] = new Conv(Parameters, "box_head.8", 256, a * 4, 3, 1, 1);
    }

    /// <summary>ODTK's anchors (ratios 1, 2, 0.5; scales 4 * 2^(i/3)).</summary>
    public OdtkAnchors Anchors => _anchors;

    private IEnumerable<Conv> Convs => _lateral.Concat(_smooth).Append(_p6).Append(_p7).Concat(_cls).Concat(_box);

    protected override void LoadChecked(StateDict weights, Device device, MemoryFormat format, DType dtype)
    {
        _body.Load(weights, device, format, dtype);
        foreach (var c in Convs) c.Load(weights, device, format, dtype);
    }

    public override HeadOutputs Forward(Tensor images, bool keepFeatures = false)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Shape[2] % 32 != 0 || images.Shape[3] % 32 != 0)
            throw new ArgumentException($"{Architecture}: input {images.Shape} must be padded to a multiple of 32 (ODTK pads to 128) so that the pyramid halves exactly");
        var p = new Tensor[5];
        try
        {
            Tensor[] c = _body.Forward(images);
            try
            {
                using var scope = new TensorScope();
                var top5 = _lateral[2].Forward(c[2]);
                var top4 = _lateral[1].Forward(c[1], Op.Resize(top5, c[1].Shape[2], c[1].Shape[3], ResizeMode.Nearest));
                var top3 = _lateral[0].Forward(c[0], Op.Resize(top4, c[0].Shape[2], c[0].Shape[3], ResizeMode.Nearest));
                p[0] = scope.Keep(_smooth[0].Forward(top3));
                p[1] = scope.Keep(_smooth[1].Forward(top4));
                p[2] = scope.Keep(_smooth[2].Forward(top5));
                p[3] = scope.Keep(_p6.Forward(c[2]));
                p[4] = scope.Keep(_p7.Forward(Op.Relu(p[3])));
            }
            finally
            {
                foreach (var t in c) t.Dispose();
            }
            var logits = new Tensor[5];
            var regs = new Tensor[5];
            var grids = new ImageSize[5];
            using var heads = new TensorScope();
            for (int l = 0; l < 5; l++)
            {
                grids[l] = new ImageSize(p[l].Shape[2], p[l].Shape[3]);
                logits[l] = Flatten(Tower(_cls, p[l]), Classes);
                regs[l] = Flatten(Tower(_box, p[l]), 4);
            }
            var cls = heads.Keep(Op.Concat(logits, 1));
            var reg = heads.Keep(Op.Concat(regs, 1));
            if (!keepFeatures) foreach (var t in p) t.Dispose();
            return new HeadOutputs(cls, reg, grids, keepFeatures ? p : null);
        }
        catch
        {
            foreach (var t in p) t?.Dispose();
            throw;
        }
    }

    private static Tensor Tower(Conv[] tower, Tensor x)
    {
        var y = x;
        foreach (var c in tower) y = c.Forward(y);
        return y;
    }

    public override void Dispose()
    {
        _body.Dispose();
        foreach (var c in Convs) c.Dispose();
    }
}
