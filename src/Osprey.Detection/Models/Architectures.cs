using Osprey.Detection.Boxes;
using Osprey.Vision.Transforms;

namespace Osprey.Detection.Models;

/// <summary>How a family turns head outputs into boxes.</summary>
public enum DetectorFamily
{
    /// <summary>torchvision RetinaNet post-processing (<see cref="RetinaNetPostProcessor"/>).</summary>
    RetinaNet,
    /// <summary>torchvision SSD post-processing (<see cref="SsdPostProcessor"/>).</summary>
    Ssd,
    /// <summary>NVIDIA ODTK RetinaNet: its anchors, decode, NMS and box convention (<see cref="OdtkPostProcessor"/>).</summary>
    OdtkRetinaNet,
    /// <summary>NVIDIA DeepLearningExamples SSD300: its default boxes, decode and NMS (<see cref="NvidiaSsdPostProcessor"/>).</summary>
    NvidiaSsd,
}

/// <summary>
/// One named architecture: how to build its network and the pre- and post-processing its reference
/// implementation uses by default.
/// </summary>
/// <param name="CategoryIds">
/// The COCO category id of each class index the model predicts, or null when its indices already are category ids
/// (torchvision's 91-class models). Detections carry the category id.
/// </param>
public sealed record Architecture(
    string Name,
    DetectorFamily Family,
    Func<DetectionModel> Create,
    ResizePolicy Resize,
    Normalization Normalization,
    PostProcessOptions PostProcess,
    string Reference,
    IReadOnlyList<int>? CategoryIds = null)
{
    /// <summary>The anchors of a RetinaNet-family architecture (torchvision's sizes 32..512 unless the architecture says otherwise).</summary>
    public Func<AnchorGenerator> Anchors { get; init; } = AnchorGenerator.RetinaNet;

    /// <summary>Builds the network for a class count other than the reference's (training on one's own data); null if the
    /// architecture cannot (yet).</summary>
    public Func<int, DetectionModel>? CreateWithClasses { get; init; }

    /// <summary>The class count a weight file was trained for, read from its classification layer; null if it cannot be told.</summary>
    public int? ClassesIn(Osprey.Core.IO.StateDict weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        if (Family == DetectorFamily.RetinaNet && weights.TryGet("head.classification_head.cls_logits.bias", out var b) && b.Rank == 1
            && b.Shape[0] % RetinaNet.AnchorsPerLocation == 0)
            return b.Shape[0] / RetinaNet.AnchorsPerLocation;
        // ssd300_vgg16: 4 default boxes per location on the first source
        if (Family == DetectorFamily.Ssd && weights.TryGet("head.classification_head.module_list.0.bias", out var s) && s.Rank == 1 && s.Shape[0] % 4 == 0)
            return s.Shape[0] / 4;
        return null;
    }

    /// <summary>The network for <paramref name="classes"/> classes (the reference's count uses <see cref="Create"/>).</summary>
    public DetectionModel CreateFor(int classes)
    {
        var model = Create();
        if (model.Classes == classes) return model;
        model.Dispose();
        if (CreateWithClasses is null) throw new ArgumentException($"{Name}: only {model.Classes} classes are supported (training other class counts is not implemented for it yet)");
        if (classes < 1) throw new ArgumentException($"{Name}: {classes} classes (need at least 1)");
        return CreateWithClasses(classes);
    }
}

/// <summary>The architectures Osprey knows by name (osprey infer --arch).</summary>
public static class Architectures
{
    private static readonly Architecture[] s_all =
    [
        Retina("retinanet_resnet18_fpn", 18),
        Retina("retinanet_resnet34_fpn", 34),
        Retina("retinanet_resnet50_fpn", 50),
        Retina("retinanet_resnet101_fpn", 101),
        Retina("retinanet_resnet152_fpn", 152),
        Tiny(),
        new("ssd300_vgg16", DetectorFamily.Ssd, () => new Ssd300Vgg16(), ResizePolicy.Ssd300, Normalization.Ssd300Vgg,
            PostProcessOptions.Ssd300Torchvision, "torchvision.models.detection.ssd300_vgg16")
        {
            CreateWithClasses = classes => new Ssd300Vgg16(classes),
        },
        new("retinanet_mobilenetv2_fpn", DetectorFamily.OdtkRetinaNet, () => new OdtkRetinaNet(), ResizePolicy.RetinaNetOdtk, Normalization.ImageNet,
            PostProcessOptions.Odtk, "NVIDIA ODTK (retinanet-examples) RetinaNet, backbone MobileNetV2FPN, 80 classes", CocoCategories.Ids),
        new("ssd300_resnet50", DetectorFamily.NvidiaSsd, () => new Ssd300ResNet50(), ResizePolicy.Ssd300, Normalization.ImageNet,
            PostProcessOptions.NvidiaSsd300, "NVIDIA DeepLearningExamples SSD300 v1.1 (ResNet-50), 81 labels with 0 = background",
            [0, .. CocoCategories.Ids]),
    ];

    /// <summary>Named in the issue but not implemented yet (none left).</summary>
    public static IReadOnlyList<string> Planned { get; } = [];

    public static IReadOnlyList<Architecture> All => s_all;

    public static Architecture Get(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        foreach (var a in s_all)
            if (string.Equals(a.Name, name, StringComparison.OrdinalIgnoreCase)) return a;
        string known = string.Join(", ", s_all.Select(a => a.Name));
        throw new ArgumentException(Planned.Contains(name, StringComparer.OrdinalIgnoreCase)
            ? $"architecture '{name}' is not implemented yet; available: {known}"
            : $"unknown architecture '{name}'; available: {known}");
    }

    /// <summary><c>retinanet_tiny_fpn</c>: <see cref="RetinaNetShape.Tiny"/>, anchors 16..256 (half torchvision's, for inputs of about
    /// 128 px), 4 classes (<c>osprey demo</c>'s three shapes as category ids 1..3); no pretrained weights exist, it is trained here.</summary>
    private static Architecture Tiny() =>
        new("retinanet_tiny_fpn", DetectorFamily.RetinaNet, () => new RetinaNet("retinanet_tiny_fpn", RetinaNetShape.Tiny, 4),
            ResizePolicy.RetinaNetTorchvision with { MinSize = 128, MaxSize = 256 }, Normalization.ImageNet, PostProcessOptions.RetinaNetTorchvision,
            "torchvision RetinaNet structure (FrozenBatchNorm2d ResNet body, FPN P3-P7, focal loss) at demo size: 3x3 stem 16, basic blocks 16/32/64/128 x 1, FPN 64, heads 2 x conv 64, anchors 16..256")
        {
            CreateWithClasses = classes => new RetinaNet("retinanet_tiny_fpn", RetinaNetShape.Tiny, classes),
            Anchors = () => AnchorGenerator.RetinaNet(16),
        };

    private static Architecture Retina(string name, int depth) =>
        new(name, DetectorFamily.RetinaNet, () => new RetinaNet(name, depth), ResizePolicy.RetinaNetTorchvision, Normalization.ImageNet,
            PostProcessOptions.RetinaNetTorchvision,
            $"torchvision RetinaNet (retinanet_resnet50_fpn structure) with a resnet{depth} body, FrozenBatchNorm2d, LastLevelP6P7(256, 256)")
        {
            CreateWithClasses = classes => new RetinaNet(name, depth, classes),
        };
}
