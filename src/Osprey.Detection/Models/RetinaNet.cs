using Osprey.Core.Backends;
using Osprey.Core.IO;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Detection.Boxes;

namespace Osprey.Detection.Models;

/// <summary>
/// torchvision's RetinaNet (retinanet_resnet50_fpn structure, v1) with a ResNet-18/34/50/101/152 body:
/// backbone.body (ResNet, frozen BN), backbone.fpn (P3-P7), head.classification_head / head.regression_head
/// (4 conv+relu layers, then cls_logits / bbox_reg), 9 anchors per location.
/// </summary>
public sealed class RetinaNet : DetectionModel
{
    public const int AnchorsPerLocation = 9;

    private readonly ResNet _body;
    private readonly Fpn _fpn;
    private readonly Conv[] _clsTower = new Conv[4], _regTower = new Conv[4];
    private readonly Conv _clsLogits, _bboxReg;

    public RetinaNet(string architecture, int depth, int classes = 91) : base(architecture, classes)
    {
        _body = new ResNet(Parameters, "backbone.body", depth);
        _fpn = new Fpn(Parameters, "backbone.fpn", _body.StageChannels);
        for (int i = 0; i < 4; i++)
            _clsTower[i] = new Conv(Parameters, $"head.classification_head.conv.{i}.0", 256, 256, 3, 1, 1, activation: UnaryKind.Relu);
        _clsLogits = new Conv(Parameters, "head.classification_head.cls_logits", 256, AnchorsPerLocation * classes, 3, 1, 1);
        for (int i = 0; i < 4; i++)
            _regTower[i] = new Conv(Parameters, $"head.regression_head.conv.{i}.0", 256, 256, 3, 1, 1, activation: UnaryKind.Relu);
        _bboxReg = new Conv(Parameters, "head.regression_head.bbox_reg", 256, AnchorsPerLocation * 4, 3, 1, 1);
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
