using Osprey.Core.IO;
using Osprey.Core.Tensors;
using Osprey.Detection;
using Osprey.Detection.Boxes;
using Osprey.Detection.Models;
using Osprey.Detection.Training.Data;
using Osprey.Detection.Training.Loop;
using Osprey.Engine;
using Osprey.Engine.Runtime;
using Osprey.Tests.Support;
using Osprey.Vision.Imaging;
using Osprey.Vision.Transforms;
using Xunit;

namespace Osprey.Tests.Training;

/// <summary>
/// <c>retinanet_tiny_fpn</c>, the demo's small RetinaNet: registry entry, parameter names and shapes, forward output shapes and
/// anchor count at a non-square input, the demo's initialisation (prior bias, zero residual), checkpoint round trip bit for
/// bit through <see cref="Detector"/>, and the engine (export path) against the eager detector.
/// </summary>
public sealed class TinyRetinaNetTests
{
    private const string Arch = "retinanet_tiny_fpn";

    private static StateDict Formula(DetectionModel model) => FormulaWeights.StateDict(model.Parameters.Expected);

    [Fact]
    public void RegisteredWithTorchvisionNamesAndHalfSizeAnchors()
    {
        var arch = Architectures.Get(Arch);
        Assert.Equal(DetectorFamily.RetinaNet, arch.Family);
        using var model = arch.Create();
        Assert.Equal(4, model.Classes);
        var p = model.Parameters.Expected;
        Assert.Equal(new Shape(16, 3, 3, 3), p["backbone.body.conv1.weight"]);
        Assert.Equal(new Shape(16), p["backbone.body.bn1.running_var"]);
        Assert.Equal(new Shape(16, 16, 3, 3), p["backbone.body.layer1.0.conv2.weight"]);
        Assert.Equal(new Shape(32, 16, 1, 1), p["backbone.body.layer2.0.downsample.0.weight"]);
        Assert.Equal(new Shape(128, 64, 3, 3), p["backbone.body.layer4.0.conv1.weight"]);
        Assert.False(p.ContainsKey("backbone.body.layer4.1.conv1.weight"));
        Assert.Equal(new Shape(64, 32, 1, 1), p["backbone.fpn.inner_blocks.0.0.weight"]);
        Assert.Equal(new Shape(64, 128, 1, 1), p["backbone.fpn.inner_blocks.2.0.weight"]);
        Assert.Equal(new Shape(64, 64, 3, 3), p["backbone.fpn.extra_blocks.p7.weight"]);
        Assert.Equal(new Shape(64, 64, 3, 3), p["head.classification_head.conv.1.0.weight"]);
        Assert.False(p.ContainsKey("head.classification_head.conv.2.0.weight"));
        Assert.Equal(new Shape(9 * 4, 64, 3, 3), p["head.classification_head.cls_logits.weight"]);
        Assert.Equal(new Shape(9 * 4, 64, 3, 3), p["head.regression_head.bbox_reg.weight"]);
        // anchors: torchvision's rule with 16 on P3 (16, 20, 25 at ratio 1), doubling per level; the reference architectures keep 32
        var cell = arch.Anchors().CellAnchors(0);
        Assert.Equal([-8f, -8f, 8f, 8f], cell.Slice(12, 4).ToArray()); // ratio 1 (the second ratio), size 16
        Assert.Equal(AnchorGenerator.RetinaNet().CellAnchors(4).ToArray(), Architectures.Get("retinanet_resnet18_fpn").Anchors().CellAnchors(4).ToArray());
        Assert.Equal([-128f, -128f, 128f, 128f], arch.Anchors().CellAnchors(4).Slice(12, 4).ToArray()); // P7: 256
        Assert.Equal(5, arch.Anchors().Levels);
        Assert.Throws<ArgumentException>(() => new ResNet(new ParameterTable(), "b", new ResNetShape(false, [1, 1, 1], [8, 8, 8])));
        Assert.Throws<ArgumentException>(() => new ResNet(new ParameterTable(), "b", new ResNetShape(false, [1, 1, 1, 1], [8, 8, 8, 8], 8, StemKernel: 4)));
    }

    [Fact]
    public void ForwardShapesAndAnchorsOnANonSquareBatch()
    {
        using var model = Architectures.Get(Arch).CreateFor(4);
        using (var w = Formula(model)) model.Load(w, "formula", Device.Cpu);
        using var x = Tensor.FromSpan<float>(Enumerable.Range(0, 2 * 3 * 128 * 160).Select(i => MathF.Sin(i * 0.01f)).ToArray(), new Shape(2, 3, 128, 160));
        using var heads = model.Forward(x);
        ImageSize[] grids = [new(16, 20), new(8, 10), new(4, 5), new(2, 3), new(1, 2)];
        Assert.Equal(grids, heads.Grids);
        int anchors = grids.Sum(g => g.Height * g.Width) * 9;
        Assert.Equal(new Shape(2, anchors, 4), heads.ClassLogits.Shape);
        Assert.Equal(new Shape(2, anchors, 4), heads.BoxRegression.Shape);
        Assert.Equal(anchors, Architectures.Get(Arch).Anchors().Count(grids));
        var logits = heads.ClassLogits.ToArray<float>();
        Assert.All(logits, v => Assert.True(float.IsFinite(v)));
        Assert.True(logits.Distinct().Count() > logits.Length / 2, "the logits vary over anchors");
    }

    [Fact]
    public void DemoInitialisationHasThePriorBiasAndZeroResiduals()
    {
        using var model = Architectures.Get(Arch).CreateFor(4);
        using var init = ModelInit.Random(model, 3);
        float prior = (float)-Math.Log((1 - 0.01) / 0.01);
        Assert.All(init["head.classification_head.cls_logits.bias"].ToArray<float>(), v => Assert.Equal(prior, v));
        Assert.All(init["backbone.body.layer3.0.bn2.weight"].ToArray<float>(), v => Assert.Equal(0f, v));   // zero_init_residual
        Assert.All(init["backbone.body.layer3.0.bn1.weight"].ToArray<float>(), v => Assert.Equal(1f, v));
        var head = init["head.regression_head.conv.0.0.weight"].ToArray<float>();
        double std = Math.Sqrt(head.Select(v => (double)v * v).Average());
        Assert.InRange(std, 0.009, 0.011);
    }

    [Fact]
    public void CheckpointRoundTripsBitForBitThroughDetector()
    {
        string dir = Directory.CreateTempSubdirectory("osprey-tiny-").FullName;
        try
        {
            var options = new TrainOptions { Architecture = Arch, BatchSize = 1, Iterations = 1, Resize = 128, MaxSize = 160, Warmup = 0, Milestones = [10], Optimizer = "adamw", LearningRate = 1e-3 };
            using var probe = Architectures.Get(Arch).CreateFor(4);
            using var w = Formula(probe);
            using var trainer = Trainer.Create(options, 4, w, "formula");
            string path = Path.Combine(dir, "tiny.safetensors");
            trainer.Save(path);
            var image = new RgbImage(150, 128);
            var rng = new Random(4);
            rng.NextBytes(image.Pixels);
            var opts = new DetectorOptions { Resize = options.EvalResize };
            using var reference = Detector.Create(Arch, w, "formula", opts);
            using var saved = WeightFile.Load(path);
            using var reloaded = Detector.Create(Arch, saved, path, opts);
            var want = reference.Detect(image);
            var got = reloaded.Detect(image);
            Assert.NotEmpty(want);
            Assert.Equal(want, got);   // frozen BN written at identity: the folded weights come back exactly
            using var resumed = Trainer.Resume(path, options);
            Assert.Equal(0, resumed.Iteration);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void EngineMatchesTheEagerDetector()
    {
        using var probe = Architectures.Get(Arch).Create();
        using var weights = Formula(probe);
        var spec = new DetectorEngineSpec(Arch, 1, 128, 128, DType.Float32, PostProcessOptions.RetinaNetTorchvision with { DetectionsPerImage = 30 });
        var graph = DetectorEngines.Build(spec, weights, "formula");
        using var engine = new EngineDetector(graph, Device.Cpu);
        using var detector = Detector.Create(Arch, weights, "formula", new DetectorOptions
        {
            Resize = new ResizePolicy(ResizeKind.Torchvision, 128, 128, 32), PostProcess = spec.PostProcess,   // the engine: longer side <= 128, zero padding
        });
        var image = new RgbImage(160, 128);
        var rng = new Random(9);
        rng.NextBytes(image.Pixels);
        var want = detector.Detect([image])[0];
        var got = engine.Detect([image])[0];
        SameDetections.Assert(want, got);
    }
}
