using Osprey.Core.Backends;
using Osprey.Core.IO;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Detection.Boxes;

namespace Osprey.Detection.Models;

/// <summary>
/// torchvision's RetinaNet (retinanet_resnet50_fpn structure, v1) with a ResNet-18/34/50/101/152 body:
/// backbone.body (ResNet, frozen BN), backbone.fpn (P3-P7), head.classification_head / head.regression_head
/// (4 conv+relu layers, then cls_logits / bbox_reg), 9 anchors per location. A <see cref="RetinaNetShape"/> gives the same
/// structure and names at other widths and depths (the demo's small <c>retinanet_tiny_fpn</c>).
/// </summary>
public sealed class RetinaNet : DetectionModel
{
    public const int AnchorsPerLocation = 9;

    private readonly ResNet _body;
    private readonly Fpn _fpn;
    private readonly Conv[] _clsTower, _regTower;
    private readonly Conv _clsLogits, _bboxReg;

    public RetinaNet(string architecture, int depth, int classes = 91) : this(architecture, RetinaNetShape.Torchvision(depth), classes)
    {
    }

    public RetinaNet(string architecture, RetinaNetShape shape, int classes) : base(architecture, classes)
    {
        ArgumentNullException.ThrowIfNull(shape);
        if (shape.FpnChannels < 1 || shape.HeadConvs < 0)
            throw new ArgumentException($"{architecture}: FPN channels {shape.FpnChannels}, head convolutions {shape.HeadConvs} (need >= 1 and >= 0)");
        int c = shape.FpnChannels;
        _body = new ResNet(Parameters, "backbone.body", shape.Body);
        _fpn = new Fpn(Parameters, "backbone.fpn", _body.StageChannels, c);
        _clsTower = new Conv[shape.HeadConvs];
        _regTower = new Conv[shape.HeadConvs];
        for (int i = 0; i < shape.HeadConvs; i++)
            _clsTower[i] = new Conv(Parameters, $"head.classification_head.conv.{i}.0", c, c, 3, 1, 1, activation: UnaryKind.Relu);
        _clsLogits = new Conv(Parameters, "head.classification_head.cls_logits", c, AnchorsPerLocation * classes, 3, 1, 1);
        for (int i = 0; i < shape.HeadConvs; i++)
            _regTower[i] = new Conv(Parameters, $"head.regression_head.conv.{i}.0", c, c, 3, 1, 1, activation: UnaryKind.Relu);
        _bboxReg = new Conv(Parameters, "head.regression_head.bbox_reg", c, AnchorsPerLocation * 4, 3, 1, 1);
    }

    protected override void LoadChecked(StateDict weights, Device device, MemoryFormat format, DType dtype)
    {
        _body.Load(weights, device, format, dtype);
        _fpn.Load(weights, device, format, dtype);
        foreach (var c in _clsTower.Append(_clsLogits).Concat(_regTower).Append(_bboxReg)) c.Load(weights, device, format, dtype);
    }

    public override HeadOutputs Forward(Tensor images, bool keepFeatures = false)
    {
        Tensor[] c = _body.Forward(images);
        Tensor[] p;
        try
        {
            p = _fpn.Forward(c);
        }
        finally
        {
            foreach (var t in c) t.Dispose();
        }
        try
        {
            var logits = new Tensor[p.Length];
            var regs = new Tensor[p.Length];
            var grids = new ImageSize[p.Length];
            using var scope = new TensorScope();
            for (int l = 0; l < p.Length; l++)
            {
                grids[l] = new ImageSize(p[l].Shape[2], p[l].Shape[3]);
                logits[l] = Flatten(Tower(_clsTower, _clsLogits, p[l]), Classes);
                regs[l] = Flatten(Tower(_regTower, _bboxReg, p[l]), 4);
            }
            var cls = scope.Keep(Op.Concat(logits, 1));
            var reg = scope.Keep(Op.Concat(regs, 1));
            var features = keepFeatures ? p : null;
            if (!keepFeatures) foreach (var t in p) t.Dispose();
            return new HeadOutputs(cls, reg, grids, features);
        }
        catch
        {
            foreach (var t in p) t.Dispose();
            throw;
        }
    }

    private static Tensor Tower(Conv[] tower, Conv last, Tensor x)
    {
        var y = x;
        foreach (var c in tower) y = c.Forward(y);
        return last.Forward(y);
    }

    public override void Dispose()
    {
        _body.Dispose();
        _fpn.Dispose();
        foreach (var c in _clsTower.Append(_clsLogits).Concat(_regTower).Append(_bboxReg)) c.Dispose();
    }
}

/// <summary>The shape of a <see cref="RetinaNet"/>: its ResNet body, the FPN's channels (P3-P7) and the conv+ReLU layers of each head tower.</summary>
public sealed record RetinaNetShape(ResNetShape Body, int FpnChannels = 256, int HeadConvs = 4)
{
    /// <summary>torchvision's retinanet_resnet50_fpn structure with a resnet{depth} body.</summary>
    public static RetinaNetShape Torchvision(int depth) => new(ResNetShape.Depth(depth));

    /// <summary>
    /// <c>retinanet_tiny_fpn</c>, the demo's small RetinaNet (about 0.4M parameters for 4 classes): a narrow ResNet body
    /// (3x3 stem of 16 channels, one basic block per stage of 16/32/64/128 planes), a 64-channel FPN and heads of 2 conv layers.
    /// </summary>
    public static RetinaNetShape Tiny { get; } = new(new ResNetShape(false, [1, 1, 1, 1], [16, 32, 64, 128], StemChannels: 16, StemKernel: 3), 64, 2);
}
