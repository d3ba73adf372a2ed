using Osprey.Detection.Boxes;
using Osprey.Vision.Transforms;

namespace Osprey.Detection.Models;

/// <summary>How a family turns head outputs into boxes.</summary>
public enum DetectorFamily
{
    RetinaNet,
    Ssd,
}

/// <summary>
/// One named architecture: how to build its network and the pre- and post-processing its reference
/// implementation uses by default.
/// </summary>
public sealed record Architecture(
    string Name,
    DetectorFamily Family,
    Func<DetectionModel> Create,
    ResizePolicy Resize,
    Normalization Normalization,
    PostProcessOptions PostProcess,
    string Reference);

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
        new("ssd300_vgg16", DetectorFamily.Ssd, () => new Ssd300Vgg16(), ResizePolicy.Ssd300, Normalization.Ssd300Vgg,
            PostProcessOptions.Ssd300Torchvision, "torchvision.models.detection.ssd300_vgg16"),
    ];

    /// <summary>Named in the issue but not implemented yet (ODTK MobileNetV2-FPN, NVIDIA SSD300 v1.1 ResNet-50).</summary>
    public static IReadOnlyList<string> Planned { get; } = ["retinanet_mobilenetv2_fpn", "ssd300_resnet50"];

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

    private static Architecture Retina(string name, int depth) =>
        new(name, DetectorFamily.RetinaNet, () => new RetinaNet(name, depth), ResizePolicy.RetinaNetTorchvision, Normalization.ImageNet,
            PostProcessOptions.RetinaNetTorchvision,
            $"torchvision RetinaNet (retinanet_resnet50_fpn structure) with a resnet{depth} body, FrozenBatchNorm2d, LastLevelP6P7(256, 256)");
}
