using Osprey.Core.Tensors;
using Osprey.Detection.Boxes;
using Osprey.Detection.Models;
using Xunit.Abstractions;

namespace Osprey.Tests.Cuda;

/// <summary>
/// GpuPostProcessor's ODTK and NVIDIA DLE SSD300 variants against <see cref="OdtkPostProcessor"/> and
/// <see cref="NvidiaSsdPostProcessor"/> on seeded random heads, and the two-pass NMS (prefix, then full) on heavily
/// overlapping boxes where the prefix keeps too few. Same contract as <see cref="GpuPostProcessTests"/>: same detections
/// in the same order (near-tie runs as sets), labels exact, scores within 1e-6 + 1e-5 relative, boxes 1e-4 + 1e-6 relative.
/// </summary>
[Collection(GpuCollection.Name)]
public sealed class NvidiaGpuPostProcessTests(ITestOutputHelper output)
{
    /// <summary>ODTK grids of a padded input (strides 8..128, as its FPN levels P3-P7).</summary>
    private static ImageSize[] OdtkGrids(ImageSize input)
    {
        var g = new ImageSize[5];
        for (int l = 0; l < 5; l++) g[l] = new ImageSize(input.Height >> (3 + l), input.Width >> (3 + l));
        return g;
    }

    public static IEnumerable<object[]> OdtkCases => new object[][]
    {
        // name, seed, N, input H, W, classes, scale, bias, quant, fp16, k, D, regression scale
        new object[] { "one image", 31, 1, 128, 128, 5, 4f, -2f, 0f, false, 1000, 100, 1f },
        new object[] { "odd batch, chunked level (> 65536 logits)", 32, 3, 512, 640, 7, 4f, -2f, 0f, false, 1000, 100, 1f },
        new object[] { "small k and D", 33, 2, 256, 384, 9, 3f, -1f, 0f, false, 50, 20, 1f },
        new object[] { "ties (quantised logits)", 34, 3, 256, 256, 5, 3f, -2f, 0.5f, false, 100, 100, 1f },
        new object[] { "fp16 heads", 35, 2, 384, 256, 11, 4f, -2f, 0f, true, 1000, 100, 1f },
        new object[] { "all below threshold", 36, 2, 128, 256, 7, 1f, -20f, 0f, false, 1000, 100, 1f },
        new object[] { "overlapping boxes (heavy suppression)", 37, 3, 256, 256, 3, 2f, 1f, 0f, false, 1000, 100, 0.02f },
    };

    [GpuTheory]
    [MemberData(nameof(OdtkCases))]
    public void OdtkMatchesCpu(string name, int seed, int n, int inH, int inW, int k, float scale, float bias, float quant, bool half, int topk, int d, float regScale)
    {
        var o = PostProcessOptions.Odtk with { CandidatesPerLevel = topk, DetectionsPerImage = d };
        var input = new ImageSize(inH, inW);
        var grids = OdtkGrids(input);
        var gen = OdtkAnchors.Default();
        float[] anchors = gen.Generate(input, grids);
        int a = anchors.Length / 4;
        var h = GpuPostProcessTests.Make(seed, n, a, k, scale, bias, quant, half);
        Array.Copy(anchors, h.Anchors, anchors.Length);
        Scale(h.Reg, regScale, half);
        var cpu = new List<DetectedObject>[n];
        var proc = new OdtkPostProcessor(o);
        for (int i = 0; i < n; i++)
        {
            cpu[i] = [];
            proc.Run(h.Logits.AsSpan(i * a * k, a * k), h.Reg.AsSpan(i * a * 4, a * 4), h.Anchors, grids, gen.AnchorsPerLocation, k, input, cpu[i]);
        }
        var (gpu, fixedSize) = Run(DetectorFamily.OdtkRetinaNet, o, BoxCoder.Odtk, h, grids, input, half);
        Report($"odtk {name}", cpu, gpu, fixedSize, n, d, bias);
    }

    public static IEnumerable<object[]> NvidiaCases => new object[][]
    {
        // name, seed, N, default boxes (0: DLE's 8732; -1: one box jittered, heavy overlap; else random), classes, scale, bias, quant, fp16, k, D
        new object[] { "one image, odd boxes", 41, 1, 97, 5, 3f, 0f, 0f, false, 200, 200 },
        new object[] { "more candidates than k", 42, 3, 1001, 11, 2f, 0f, 0f, false, 200, 200 },
        new object[] { "small k and D", 43, 5, 333, 7, 2f, 0f, 0f, false, 5, 7 },
        new object[] { "ties (quantised logits; DLE's higher index first)", 44, 3, 517, 6, 2f, 0f, 0.5f, false, 50, 100 },
        new object[] { "fp16 heads", 45, 2, 777, 9, 3f, 0f, 0f, true, 200, 200 },
        new object[] { "fp16 ties", 46, 3, 401, 4, 2f, 0f, 0.25f, true, 30, 40 },
        new object[] { "all below threshold (0.9)", 47, 3, 211, 5, 0.5f, -20f, 0f, false, 200, 200 },
        new object[] { "dle default boxes, 81 classes", 48, 2, 0, 81, 1.5f, 0f, 0f, false, 200, 200 },
        new object[] { "dle default boxes, fp16", 49, 3, 0, 81, 1.5f, 0f, 0f, true, 200, 200 },
        new object[] { "overlapping boxes (full second NMS pass)", 50, 2, -1, 6, 2f, 0f, 0f, false, 200, 20 },
    };

    [GpuTheory]
    [MemberData(nameof(NvidiaCases))]
    public void NvidiaSsdMatchesCpu(string name, int seed, int n, int boxes, int k, float scale, float bias, float quant, bool half, int topk, int d)
    {
        var o = PostProcessOptions.NvidiaSsd300 with { CandidatesPerLevel = topk, DetectionsPerImage = d, ScoreThreshold = bias < -10 ? 0.9f : 0.05f };
        float[] dboxes = boxes == 0 ? NvidiaDefaultBoxes.Generate() : CenterSizeBoxes(seed, boxes < 0 ? 600 : boxes, boxes < 0);
        int a = dboxes.Length / 4;
        var h = GpuPostProcessTests.Make(seed, n, a, k, scale, bias, quant, half);
        Array.Copy(dboxes, h.Anchors, dboxes.Length);
        if (boxes < 0) Scale(h.Reg, 0.05f, half);
        var cpu = new List<DetectedObject>[n];
        var proc = new NvidiaSsdPostProcessor(o);
        for (int i = 0; i < n; i++)
        {
            cpu[i] = [];
            proc.Run(h.Logits.AsSpan(i * a * k, a * k), h.Reg.AsSpan(i * a * 4, a * 4), h.Anchors, k, cpu[i]);
        }
        var (gpu, fixedSize) = Run(DetectorFamily.NvidiaSsd, o, BoxCoder.NvidiaSsd, h, [], default, half);
        Report($"nvidia ssd {name}", cpu, gpu, fixedSize, n, d, bias);
    }

    /// <summary>torchvision SSD with nearly identical boxes: each image's prefix keeps fewer than D, so the full pass runs.</summary>
    [GpuFact]
    public void TorchvisionSsdFullSecondPassMatchesCpu()
    {
        var o = PostProcessOptions.Ssd300Torchvision with { DetectionsPerImage = 50 };
        var h = GpuPostProcessTests.Make(51, 3, 700, 8, 2f, 0f);
        var rng = new Random(51);
        for (int i = 0; i < h.A; i++)
        {
            float j() => 4 * (float)rng.NextDouble();
            h.Anchors[4 * i] = 100 + j(); h.Anchors[4 * i + 1] = 80 + j(); h.Anchors[4 * i + 2] = 180 + j(); h.Anchors[4 * i + 3] = 170 + j();
        }
        Scale(h.Reg, 0.05f, false);
        var cpu = GpuPostProcessTests.Cpu(DetectorFamily.Ssd, o, h, []);
        var (gpu, fixedSize) = GpuPostProcessTests.Gpu(DetectorFamily.Ssd, o, h, [], false);
        Report("torchvision ssd, overlapping boxes", cpu, gpu, fixedSize, h.N, o.DetectionsPerImage, 0);
        Assert.True(cpu[0].Count < o.DetectionsPerImage, "the case should keep fewer than D (the second pass runs)");
    }

    [GpuFact]
    public void BadInputsThrowClearErrors()
    {
        var dev = Gpu.Device;
        using var logits = Tensor.Zeros(new Shape(2, 10, 3), DType.Float32, dev);
        using var reg = Tensor.Zeros(new Shape(2, 10, 4), DType.Float32, dev);
        using var anchors = Tensor.Zeros(new Shape(10, 4), DType.Float32, dev);
        ImageSize[] sizes = [new(100, 100), new(90, 80)];
        using var odtk = new GpuPostProcessor(DetectorFamily.OdtkRetinaNet, PostProcessOptions.Odtk, BoxCoder.Odtk, dev);
        Assert.Contains("grids and the padded input size are needed", Assert.Throws<ArgumentException>(() => odtk.Run(logits, reg, anchors, [10], sizes)).Message);
        Assert.Contains("not a whole number per location", Assert.Throws<ArgumentException>(() => odtk.Run(logits, reg, anchors, [], sizes, [new(2, 2)], new ImageSize(16, 16))).Message);
        Assert.Contains("OdtkInclusive box coding", Assert.Throws<ArgumentException>(() => new GpuPostProcessor(DetectorFamily.OdtkRetinaNet, PostProcessOptions.Odtk, BoxCoder.RetinaNet, dev)).Message);
        Assert.Contains("CenterSize box coding", Assert.Throws<ArgumentException>(() => new GpuPostProcessor(DetectorFamily.NvidiaSsd, PostProcessOptions.NvidiaSsd300, BoxCoder.Ssd, dev)).Message);
        using var oneClass = Tensor.Zeros(new Shape(2, 10, 1), DType.Float32, dev);
        using var dle = new GpuPostProcessor(DetectorFamily.NvidiaSsd, PostProcessOptions.NvidiaSsd300, BoxCoder.NvidiaSsd, dev);
        Assert.Contains("(nvidia ssd): logits need at least 2 classes", Assert.Throws<ArgumentException>(() => dle.Run(oneClass, reg, anchors, [], sizes)).Message);
    }

    private static (IReadOnlyList<DetectedObject>[] Found, GpuPostProcessTests.GpuDetectionsHost Fixed) Run(DetectorFamily family, PostProcessOptions o, BoxCoder coder,
        GpuPostProcessTests.Heads h, ImageSize[] grids, ImageSize input, bool half)
    {
        var dev = Gpu.Device;
        using var logits = half ? Tensor.FromSpan<Half>(ToHalf(h.Logits), new Shape(h.N, h.A, h.K), dev) : Tensor.FromSpan<float>(h.Logits, new Shape(h.N, h.A, h.K), dev);
        using var reg = half ? Tensor.FromSpan<Half>(ToHalf(h.Reg), new Shape(h.N, h.A, 4), dev) : Tensor.FromSpan<float>(h.Reg, new Shape(h.N, h.A, 4), dev);
        using var anchors = Tensor.FromSpan<float>(h.Anchors, new Shape(h.A, 4), dev);
        Gpu.Backend.Synchronize();
        long live = Gpu.Backend.Memory.LiveBytes;
        IReadOnlyList<DetectedObject>[] found;
        GpuPostProcessTests.GpuDetectionsHost fixedSize;
        using (var post = new GpuPostProcessor(family, o, coder, dev))
        {
            using var d = post.Run(logits, reg, anchors, [], h.Sizes, grids, input);
            fixedSize = new GpuPostProcessTests.GpuDetectionsHost(d.Counts.Shape, d.Boxes.Shape, d.Scores.Shape, d.Labels.Shape,
                d.Counts.ToArray<int>(), d.Boxes.ToArray<float>(), d.Scores.ToArray<float>(), d.Labels.ToArray<int>());
            found = GpuPostProcessor.Download(d);
        }
        Gpu.Backend.Synchronize();
        Assert.Equal(live, Gpu.Backend.Memory.LiveBytes);
        return (found, fixedSize);
    }

    private void Report(string what, List<DetectedObject>[] cpu, IReadOnlyList<DetectedObject>[] gpu, GpuPostProcessTests.GpuDetectionsHost fixedSize, int n, int d, float bias)
    {
        var (se, be) = GpuPostProcessTests.Compare(cpu, gpu, what);
        GpuPostProcessTests.CheckFixed(fixedSize, gpu, n, d);
        int total = 0;
        foreach (var c in cpu) total += c.Count;
        output.WriteLine($"{what}: {total} detections, max score error {se:G3}, max box error {be:G3}");
        if (bias < -10) Assert.Equal(0, total);
        else Assert.True(total > 0, "the case should produce detections");
    }

    /// <summary>Random (cx, cy, w, h) relative boxes; overlapping: one box (0.5, 0.5, 0.3, 0.3) jittered by at most 0.01.</summary>
    private static float[] CenterSizeBoxes(int seed, int count, bool overlapping)
    {
        var rng = new Random(seed + 1000);
        var b = new float[count * 4];
        for (int i = 0; i < count; i++)
        {
            if (overlapping)
                for (int c = 0; c < 4; c++) b[4 * i + c] = (c < 2 ? 0.5f : 0.3f) + 0.01f * (float)rng.NextDouble();
            else
            {
                b[4 * i] = (float)rng.NextDouble(); b[4 * i + 1] = (float)rng.NextDouble();
                b[4 * i + 2] = 0.05f + 0.45f * (float)rng.NextDouble(); b[4 * i + 3] = 0.05f + 0.45f * (float)rng.NextDouble();
            }
        }
        return b;
    }

    /// <summary>Scales regression codes (re-rounded to float16 for fp16 cases, so both sides read the same values).</summary>
    private static void Scale(float[] reg, float s, bool half)
    {
        if (s == 1f) return;
        for (int i = 0; i < reg.Length; i++) reg[i] = half ? (float)(Half)(reg[i] * s) : reg[i] * s;
    }

    private static Half[] ToHalf(float[] x)
    {
        var h = new Half[x.Length];
        for (int i = 0; i < x.Length; i++) h[i] = (Half)x[i];
        return h;
    }
}
