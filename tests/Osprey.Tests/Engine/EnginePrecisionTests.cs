using Osprey.Core.IO;
using Osprey.Core.Tensors;
using Osprey.Detection.Boxes;
using Osprey.Detection.Models;
using Osprey.Engine;
using Osprey.Engine.Runtime;
using Osprey.Engine.Serialization;
using Osprey.Engine.Tracing;
using Osprey.Engine.Tuning;
using Osprey.Tests.Support;
using Osprey.Tests.Vision;
using Osprey.Vision.Codecs;
using Osprey.Vision.Imaging;
using Xunit.Abstractions;

namespace Osprey.Tests.Engine;

/// <summary>
/// 16-bit detector engines on the CPU (the CPU backend stores float16/bfloat16 values and computes each kernel in float32,
/// rounding its output once): the whole detector (pre-processing, network, decode + NMS) at fp16 and bf16 against the fp32
/// engine of the same weights on the same coco128 images (issue 6 item 7; `Osprey.Bench engine-accuracy --device cpu` does
/// the same over a whole set with mAP). What this does not cover: cuDNN's fp16 kernels (their accumulation order and
/// algorithms), which only the GPU run measures.
/// </summary>
public class EnginePrecisionTests(ITestOutputHelper output)
{
    private const string Arch = "retinanet_tiny_fpn";
    private const int Size = 128;

    private static RgbImage[] Images() =>
        [.. new[] { "000000000009.jpg", "000000000025.jpg", "000000000030.jpg", "000000000034.jpg" }
            .Select(n => ImageDecoder.Decode(Path.Combine(ImageDecoderTests.CocoDir, n)))];

    private static IReadOnlyList<DetectedObject>[] Detect(StateDict weights, DType precision, RgbImage[] images)
    {
        var a = Architectures.Get(Arch);
        var spec = new DetectorEngineSpec(Arch, 2, Size, Size, precision, a.PostProcess);
        var graph = DetectorEngines.Build(spec, weights, "seeded");
        using var engine = new EngineDetector(graph, Device.Cpu, "seeded");
        return engine.Detect(images);
    }

    /// <summary>
    /// Seeded weights (the benchmarks' stand-ins): many low-score detections with near-tied scores and boxes, a harder
    /// case for agreement than a trained model's few confident ones. Measured on these 4 images (session 5, 444 fp32
    /// detections): fp16 matched 94.8 % (IoU >= 0.5), score |diff| mean 4.0e-5 max 1.4e-4, mean matched IoU 0.998; bf16
    /// (8 significand bits to fp16's 11) 93.5 %, mean 3.5e-4 max 0.0102, mean IoU 0.983. Over all 128 coco128 images the
    /// bench measured 94.8 % (fp16) and 93.5 % (bf16). The thresholds leave a margin: at least 90 % / 88 % matched, mean
    /// score difference within 2e-4 / 2e-3 (5x), max within 1e-3 / 0.03, mean matched IoU at least 0.99 / 0.96.
    /// </summary>
    [Theory]
    [InlineData(DType.Float16, 0.90, 2e-4, 1e-3, 0.99)]
    [InlineData(DType.BFloat16, 0.88, 2e-3, 0.03, 0.96)]
    public void Sixteen_bit_engine_detections_agree_with_the_fp32_engine(DType precision, double minRate, double maxMeanScore, double maxScore, double minMeanIou)
    {
        var images = Images();
        using var weights = SeededWeights.For(Architectures.Get(Arch));
        var reference = Detect(weights, DType.Float32, images);
        var candidate = Detect(weights, precision, images);
        var agree = DetectionAgreement.Compare(reference, candidate, 0.5);
        output.WriteLine($"{precision.Name()} vs float32: {agree}; match rate {agree.MatchRate:P2}");
        Assert.True(agree.Reference > 100, $"only {agree.Reference} fp32 detections: the comparison would say little");
        Assert.True(agree.MatchRate >= minRate, $"{precision.Name()}: {agree.MatchRate:P2} of the fp32 detections matched, expected at least {minRate:P0}");
        Assert.True(agree.MeanScoreDiff <= maxMeanScore, $"{precision.Name()}: mean score |diff| {agree.MeanScoreDiff} > {maxMeanScore}");
        Assert.True(agree.MaxScoreDiff <= maxScore, $"{precision.Name()}: max score |diff| {agree.MaxScoreDiff} > {maxScore}");
        Assert.True(agree.MeanIou >= minMeanIou, $"{precision.Name()}: mean matched IoU {agree.MeanIou} < {minMeanIou}");
        // the 16-bit engine really is 16-bit: its heads are of that dtype and differ from the fp32 engine's
        Assert.True(agree.MeanScoreDiff > 0, "identical scores: the 16-bit engine did not round anything");
    }

    [Fact]
    public void Engine_precision_names_and_spec_round_trip()
    {
        Assert.Equal("bf16", DetectorEngines.PrecisionName(DType.BFloat16));
        Assert.Equal(DType.BFloat16, DetectorEngines.ParsePrecision("bf16"));
        Assert.Null(DetectorEngines.ParsePrecision("fp8"));
        Assert.Throws<ArgumentException>(() => DetectorEngines.PrecisionName(DType.Int32));
        var a = Architectures.Get(Arch);
        Assert.Contains("expected float32, float16 or bfloat16",
            Assert.Throws<ArgumentException>(() => new DetectorEngineSpec(Arch, 1, 64, 64, DType.Int32, a.PostProcess).Validate()).Message, StringComparison.Ordinal);
        using var weights = SeededWeights.For(a);
        var graph = DetectorEngines.Build(new DetectorEngineSpec(Arch, 1, 64, 64, DType.BFloat16, a.PostProcess), weights, "seeded");
        Assert.Equal("bf16", graph.Metadata["precision"]);
        Assert.Equal(DType.BFloat16, graph.Outputs.Single(v => v.Name == "class_logits").DType);
        Assert.Equal(DType.BFloat16, DetectorEngines.ReadSpec(graph, "t").Spec.Precision);
        graph.Metadata["precision"] = "fp8";
        Assert.Contains("metadata precision 'fp8' (expected fp16, bf16 or fp32)",
            Assert.Throws<EngineFormatException>(() => DetectorEngines.ReadSpec(graph, "t")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Traced_detector_takes_its_class_count_from_the_weights()
    {
        // a retinanet_tiny_fpn checkpoint trained for 3 classes (the reference has 4): traced with 3, as Detector.Load reads it
        var a = Architectures.Get(Arch);
        using var probe = a.CreateFor(3);
        using var weights = FormulaWeights.StateDict(probe.Parameters.Expected);
        var graph = GraphTracer.TraceDetector(a, weights, "formula", 1, 64, 64);
        Assert.Equal("3", graph.Metadata["classes"]);
        Assert.Equal(3, graph.Outputs.Single(v => v.Name == "class_logits").Shape[2]);
    }
}
