using Osprey.Core.IO;
using Osprey.Detection;
using Osprey.Detection.Boxes;
using Osprey.Tests.Support;
using Osprey.Tests.Vision;
using Osprey.Vision.Codecs;

namespace Osprey.Tests.Detection;

/// <summary>
/// Training checkpoints in the NVIDIA tools' own layouts (tools/golden_weights.py: ODTK's {backbone, classes,
/// state_dict, ratios, scales, iteration}; DeepLearningExamples' {epoch, iteration, label_map, model}) load through the
/// restricted unpickler under the upstream parameter names, including the parameters the detectors never use (ODTK's
/// MobileNetV2 features.18 and classifier) and batch norms' num_batches_tracked.
/// </summary>
public class NvidiaCheckpointTests
{
    [Theory]
    [InlineData("retinanet_mobilenetv2_fpn", "odtk_mobilenetv2fpn.pth", 298)]
    [InlineData("ssd300_resnet50", "nvidia_ssd300.pth", 289)]
    public void Upstream_checkpoints_load_and_run(string arch, string file, int parameters)
    {
        string path = RepoPaths.Fixture("weights", file);
        using (var sd = TorchCheckpoint.LoadStateDict(path))
        {
            // every tensor is a stride-0 view of one value: parameter i holds 0.01 * ((i % 7) - 3)
            Assert.Equal(parameters, sd.Keys.Count(k => !k.EndsWith(".num_batches_tracked", StringComparison.Ordinal)));
            var first = sd.Entries.First();
            Assert.All(first.Value.ToArray<float>(), v => Assert.Equal(-0.03f, v, 1e-7f));
        }
        var a = Osprey.Detection.Models.Architectures.Get(arch);
        var resize = a.Resize.Kind == Osprey.Vision.Transforms.ResizeKind.Fixed ? a.Resize : a.Resize with { MinSize = 160, MaxSize = 256 };
        using var detector = Detector.Load(arch, path, new DetectorOptions { Resize = resize });
        var found = detector.Detect(ImageDecoder.Decode(Path.Combine(ImageDecoderTests.CocoDir, "000000000009.jpg")));
        Assert.InRange(found.Count, 0, detector.PostProcess.DetectionsPerImage);
        Assert.All(found, d => Assert.Contains(d.Label, CocoCategories.Ids));
    }

    [Fact]
    public void A_checkpoint_for_another_class_count_names_the_heads()
    {
        using var sd = TorchCheckpoint.LoadStateDict(RepoPaths.Fixture("weights", "odtk_mobilenetv2fpn.pth"));
        var renamed = new StateDict();
        foreach (var (k, t) in sd.Entries)
            renamed.Add(k, k.StartsWith("cls_head.8", StringComparison.Ordinal) ? Osprey.Core.Tensors.Tensor.Zeros(
                k.EndsWith("weight", StringComparison.Ordinal) ? new(18, 256, 3, 3) : new(18), Osprey.Core.Tensors.DType.Float32) : t.Share());
        using (renamed)
        {
            var e = Assert.Throws<WeightFileException>(() => Detector.Create("retinanet_mobilenetv2_fpn", renamed, "two_classes.pth"));
            Assert.Contains("cls_head.8.weight", e.Message, StringComparison.Ordinal);
            Assert.Contains("two_classes.pth", e.Message, StringComparison.Ordinal);
        }
    }

    /// <summary>Training checkpoints with optimizer and scheduler state beside the weights (ODTK Model.save, DLE main.py).</summary>
    [Theory]
    [InlineData("odtk_training.pth")]
    [InlineData("dle_training.pth")]
    public void Training_checkpoints_with_optimizer_state_give_their_weights(string file)
    {
        using var sd = TorchCheckpoint.LoadStateDict(RepoPaths.Fixture("weights", file));
        Assert.Equal(["weight", "bias"], sd.Keys.ToArray());
        Assert.Equal([-3f, -2.5f, -2f, -1.5f], sd["weight"].ToArray<float>());
        Assert.Equal([-3f, -2.5f], sd["bias"].ToArray<float>());
    }

    [Fact]
    public void Distributed_module_prefixes_are_unwrapped()
    {
        using var sd = TorchCheckpoint.LoadStateDict(RepoPaths.Fixture("weights", "nvidia_ssd300.pth"));
        using var wrapped = new StateDict();
        foreach (var (k, t) in sd.Entries) wrapped.Add("module." + k, t.Share());
        using (Detector.Create("ssd300_resnet50", wrapped, "ddp.pt")) { }
        // a partly prefixed dict is not guessed at: its keys are reported as they are
        using var mixed = new StateDict();
        foreach (var (k, t) in sd.Entries) mixed.Add(k.StartsWith("loc.", StringComparison.Ordinal) ? k : "module." + k, t.Share());
        Assert.Contains("unexpected", Assert.Throws<WeightFileException>(() => Detector.Create("ssd300_resnet50", mixed, "mixed.pt")).Message, StringComparison.Ordinal);
    }
}
