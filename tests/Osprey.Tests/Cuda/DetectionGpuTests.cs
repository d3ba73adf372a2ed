using System.Text.Json;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Cuda.Detection;
using Osprey.Detection;
using Osprey.Detection.Boxes;
using Osprey.Detection.Gpu;
using Osprey.Detection.Models;
using Osprey.Tests.Detection;
using Osprey.Tests.Support;
using Osprey.Tests.Vision;
using Osprey.Vision.Codecs;
using Osprey.Vision.Imaging;
using Osprey.Vision.Transforms;

namespace Osprey.Tests.Cuda;

/// <summary>
/// Detection on the GPU: the fused pre-processing kernel against the CPU <see cref="Preprocessor"/>, and whole
/// detectors in fp32 and fp16 against the torchvision goldens that the CPU path matches (ModelGoldenTests).
/// </summary>
[Collection(GpuCollection.Name)]
public class DetectionGpuTests
{
    private static RgbImage RandomImage(int seed, int width, int height)
    {
        var img = new RgbImage(width, height);
        var rng = new Random(seed);
        rng.NextBytes(img.Pixels);
        return img;
    }

    private static float[] Floats(Tensor t)
    {
        if (t.DType == DType.Float32) return t.ToArray<float>();
        using var f = Op.Cast(t, DType.Float32);
        return f.ToArray<float>();
    }

    public static TheoryData<string, MemoryFormat, DType> PreprocessCases()
    {
        var d = new TheoryData<string, MemoryFormat, DType>();
        foreach (string p in new[] { "torchvision", "odtk", "ssd" })
            foreach (var f in new[] { MemoryFormat.Contiguous, MemoryFormat.ChannelsLast })
                foreach (var t in new[] { DType.Float32, DType.Float16 })
                    d.Add(p, f, t);
        return d;
    }

    /// <summary>
    /// Tolerance vs the CPU path (host normalisation, then Op.Resize): fp32 1e-5 + 1e-5 relative (the kernel repeats the
    /// CPU's operation order without FMA contraction, so it is expected to be exact; the tolerance only absorbs
    /// division rounding); fp16 output 1e-3 + 1e-3 relative (one float16 rounding, 2^-11 relative).
    /// </summary>
    [GpuTheory]
    [MemberData(nameof(PreprocessCases))]
    public void Fused_preprocess_matches_the_cpu_preprocessor(string policy, MemoryFormat format, DType dtype)
    {
        var (resize, norm) = policy switch
        {
            "torchvision" => (new ResizePolicy(ResizeKind.Torchvision, 64, 96, 32), Normalization.ImageNet),
            "odtk" => (new ResizePolicy(ResizeKind.Odtk, 40, 70, 128), Normalization.ImageNet),
            _ => (ResizePolicy.Ssd300 with { MinSize = 45, MaxSize = 45 }, Normalization.Ssd300Vgg),
        };
        // odd sizes, up- and down-scaling, one image already at its target size, a 1-pixel-wide one
        var images = new[] { RandomImage(1, 37, 53), RandomImage(2, 101, 77), RandomImage(3, 1, 9), RandomImage(4, 45, 45), RandomImage(5, 250, 31) };
        long live = Gpu.Backend.Memory.LiveBytes;
        using (var gpu = new GpuPreprocessor(resize, norm, Gpu.Device, dtype, format))
        {
            var cpu = new Preprocessor(resize, norm, Device.Cpu);
            for (int round = 0; round < 2; round++)   // the second batch reuses the staging and device buffers
            {
                var batch = round == 0 ? images : images.Reverse().Take(3).ToArray();
                using var want = cpu.Batch(batch);
                using var got = gpu.Batch(batch);
                Assert.Equal(want.Resized, got.Resized);
                Assert.Equal(want.Original, got.Original);
                Assert.Equal(want.Images.Shape, got.Images.Shape);
                Assert.Equal(dtype, got.Images.DType);
                Assert.True(got.Images.IsContiguous(format), $"output layout {format}");
                double tol = dtype == DType.Float32 ? 1e-5 : 1e-3;
                Close.Assert(want.Images.ToArray<float>(), Floats(got.Images), tol, tol, $"{policy} {format} {dtype} round {round}");
            }
        }
        Gpu.Backend.Synchronize();
        Assert.Equal(live, Gpu.Backend.Memory.LiveBytes);
    }

    [GpuFact]
    public void Preprocess_rejects_bad_descriptors_and_outputs()
    {
        using var k = new BatchPreprocessor(Gpu.Backend);
        k.Stage(10 * 10 * 3);
        using var ok = Tensor.Empty(new Shape(1, 3, 16, 16), DType.Float32, Gpu.Device);
        float[] m = [0, 0, 0], s = [1, 1, 1];
        Assert.Contains("outside the 300 staged bytes", Assert.Throws<ArgumentException>(() => k.Run(300, [new PreprocessImage(1, 10, 10, 8, 8)], ok, m, s)).Message, StringComparison.Ordinal);
        Assert.Contains("does not fit the output", Assert.Throws<ArgumentException>(() => k.Run(300, [new PreprocessImage(0, 10, 10, 17, 8)], ok, m, s)).Message, StringComparison.Ordinal);
        using var bad = Tensor.Empty(new Shape(1, 4, 16, 16), DType.Float32, Gpu.Device);
        Assert.Contains("[1, 3, H, W]", Assert.Throws<ArgumentException>(() => k.Run(300, [new PreprocessImage(0, 10, 10, 8, 8)], bad, m, s)).Message, StringComparison.Ordinal);
        using var cpu = Tensor.Empty(new Shape(1, 3, 16, 16), DType.Float32);
        Assert.Contains("is on cpu", Assert.Throws<ArgumentException>(() => k.Run(300, [new PreprocessImage(0, 10, 10, 8, 8)], cpu, m, s)).Message, StringComparison.Ordinal);
    }

    public static TheoryData<string, Precision, bool> GoldenCases()
    {
        var d = new TheoryData<string, Precision, bool>();
        foreach (string a in new[] { "retinanet_resnet18_fpn", "retinanet_resnet34_fpn", "retinanet_resnet50_fpn", "retinanet_resnet101_fpn", "retinanet_resnet152_fpn", "ssd300_vgg16" })
        {
            d.Add(a, Precision.Fp32, false);   // heads copied to the host, CPU post-processing
            d.Add(a, Precision.Fp32, true);    // GpuPostProcessor
            d.Add(a, Precision.Fp16, true);
        }
        // ODTK's and NVIDIA's post-processing: on the host after the GPU network, and on the GPU
        foreach (string a in new[] { "retinanet_mobilenetv2_fpn", "ssd300_resnet50" })
        {
            d.Add(a, Precision.Fp32, false);
            d.Add(a, Precision.Fp16, false);
            d.Add(a, Precision.Fp32, true);
            d.Add(a, Precision.Fp16, true);
        }
        return d;
    }

    /// <summary>
    /// The CPU goldens (tools/golden_models.py, torchvision 0.14) on the GPU, channels-last.
    /// fp32: exactly the CPU test's tolerances (statistics within 2e-3 of the abs-sum, input 1e-4; detection count exact,
    /// first 25 scores 1e-4 + 1e-3 relative, labels exact, boxes 0.05 px + 1e-3 relative).
    /// fp16: input 1e-3, features and head outputs 3e-2 of the abs-sum (sampled values 3e-2 relative + 0.3 x the mean
    /// magnitude); detections: of torchvision's first 20, at least 90% have a GPU detection of the same label, score
    /// within 0.03 and box corners within 2% of the image's longer side, and the count is within 10% + 5.
    /// </summary>
    [GpuTheory]
    [MemberData(nameof(GoldenCases))]
    public void Detector_on_the_gpu_matches_torchvision(string arch, Precision precision, bool gpuPost)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "detect", "models", arch + ".json")));
        var f = doc.RootElement;
        var a = Architectures.Get(arch);
        var model = a.Create();
        using var weights = FormulaWeights.StateDict(model.Parameters.Expected);
        model.Dispose();
        var resize = a.Resize.Kind == ResizeKind.Fixed ? a.Resize
            : a.Resize with { MinSize = f.GetProperty("min_size").GetInt32(), MaxSize = f.GetProperty("max_size").GetInt32() };
        bool fp32 = precision == Precision.Fp32;
        long live = Gpu.Backend.Memory.LiveBytes;
        using (var detector = Detector.Create(arch, weights, "formula", new DetectorOptions { Resize = resize, Device = Gpu.Device, Precision = precision, GpuPostProcess = gpuPost }))
        {
            Assert.Equal(gpuPost, detector.PostProcessesOnGpu);
            var images = f.GetProperty("images").EnumerateArray().Select(n => ImageDecoder.Decode(Path.Combine(ImageDecoderTests.CocoDir, n.GetString()!))).ToArray();
            var (batch, heads) = detector.RunNetwork(images, keepFeatures: true);
            using (batch)
            using (heads)
            {
                Assert.Equal(fp32 ? DType.Float32 : DType.Float16, heads.ClassLogits.DType);
                Assert.Equal(f.GetProperty("image_sizes").EnumerateArray().Select(s => (s[0].GetInt32(), s[1].GetInt32())), batch.Resized);
                ModelGoldenTests.AssertStats(f.GetProperty("input"), batch.Images, fp32 ? 1e-4 : 1e-3, "input");
                double tol = fp32 ? 2e-3 : 3e-2;
                var feats = f.GetProperty("features").EnumerateArray().ToArray();
                Assert.Equal(feats.Length, heads.Features.Length);
                for (int i = 0; i < feats.Length; i++) ModelGoldenTests.AssertStats(feats[i], heads.Features[i], tol, $"feature {i}");
                ModelGoldenTests.AssertStats(f.GetProperty("cls_logits"), heads.ClassLogits, tol, "cls_logits");
                ModelGoldenTests.AssertStats(f.GetProperty("bbox_regression"), heads.BoxRegression, tol, "bbox_regression");
                var dets = detector.PostProcessBatch(heads, batch);
                var want = f.GetProperty("detections").EnumerateArray().ToArray();
                for (int i = 0; i < want.Length; i++)
                {
                    if (fp32) AssertExact(want[i], dets[i], $"{arch} image {i} (post-processing on the {(gpuPost ? "GPU" : "host")})");
                    else AssertMatched(want[i], dets[i], Math.Max(images[i].Width, images[i].Height), $"{arch} fp16 image {i}");
                }
            }
        }
        Gpu.Backend.Synchronize();
        Assert.Equal(live, Gpu.Backend.Memory.LiveBytes);
    }

    private static void AssertExact(JsonElement want, IReadOnlyList<DetectedObject> got, string what)
    {
        Assert.Equal(want.GetProperty("count").GetInt32(), got.Count);
        var scores = want.GetProperty("scores").Floats();
        Close.Assert(scores, got.Take(scores.Length).Select(d => d.Score).ToArray(), 1e-4, 1e-3, what + " scores");
        Assert.Equal(want.GetProperty("labels").Ints(), got.Take(scores.Length).Select(d => d.Label).ToArray());
        var boxes = want.GetProperty("boxes").Floats();
        Close.Assert(boxes, got.Take(boxes.Length / 4).SelectMany(d => new[] { d.X1, d.Y1, d.X2, d.Y2 }).ToArray(), 0.05, 1e-3, what + " boxes");
    }

    /// <summary>
    /// fp16 detections against torchvision's: matched by label, score (within 0.03) and box corners (each within 2% of
    /// the image's longer side) rather than IoU, since clipping leaves many zero-height boxes at the image border
    /// (IoU 0 with anything) among these formula-weight detections.
    /// </summary>
    private static void AssertMatched(JsonElement want, IReadOnlyList<DetectedObject> got, int longerSide, string what)
    {
        int count = want.GetProperty("count").GetInt32();
        Assert.True(Math.Abs(got.Count - count) <= count / 10 + 5, $"{what}: {got.Count} detections, torchvision {count}");
        var scores = want.GetProperty("scores").Floats();
        var labels = want.GetProperty("labels").Ints();
        var boxes = want.GetProperty("boxes").Floats();
        int n = Math.Min(20, scores.Length), matched = 0;
        double px = 0.02 * longerSide;
        for (int i = 0; i < n; i++)
        {
            var w = new DetectedObject(boxes[i * 4], boxes[i * 4 + 1], boxes[i * 4 + 2], boxes[i * 4 + 3], scores[i], labels[i]);
            if (got.Any(g => g.Label == w.Label && Math.Abs(g.Score - w.Score) <= 0.03 && Corners(g, w) <= px)) matched++;
        }
        Assert.True(matched >= Math.Ceiling(0.9 * n), $"{what}: {matched} of torchvision's first {n} detections matched");
    }

    private static double Corners(DetectedObject a, DetectedObject b) =>
        Math.Max(Math.Max(Math.Abs(a.X1 - b.X1), Math.Abs(a.Y1 - b.Y1)), Math.Max(Math.Abs(a.X2 - b.X2), Math.Abs(a.Y2 - b.Y2)));
}
