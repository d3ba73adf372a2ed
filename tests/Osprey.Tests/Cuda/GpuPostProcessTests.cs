using Osprey.Core.Tensors;
using Osprey.Detection.Boxes;
using Osprey.Detection.Models;
using Xunit.Abstractions;

namespace Osprey.Tests.Cuda;

/// <summary>
/// GpuPostProcessor against the CPU post-processors (which reproduce torchvision) on seeded random head outputs:
/// same detections in the same order, labels exact, scores within 1e-6 + 1e-5 relative, boxes within 1e-4 px + 1e-6 relative.
/// </summary>
[Collection(GpuCollection.Name)]
public sealed class GpuPostProcessTests(ITestOutputHelper output)
{
    /// <summary>Random heads of a batch: logits uniform in [bias - scale, bias + scale] (rounded to multiples of quant when quant > 0).</summary>
    internal sealed record Heads(int N, int A, int K, float[] Logits, float[] Reg, float[] Anchors, ImageSize[] Sizes);

    internal static Heads Make(int seed, int n, int a, int k, float scale, float bias, float quant = 0, bool half = false)
    {
        var rng = new Random(seed);
        var logits = new float[(long)n * a * k];
        for (long i = 0; i < logits.LongLength; i++)
        {
            float x = bias + scale * (2 * (float)rng.NextDouble() - 1);
            logits[i] = quant > 0 ? MathF.Round(x / quant) * quant : x;
        }
        var reg = new float[n * a * 4];
        for (int i = 0; i < reg.Length; i++) reg[i] = 2 * (float)rng.NextDouble() - 1;
        var anchors = new float[a * 4];
        for (int i = 0; i < a; i++)
        {
            float cx = 320 * (float)rng.NextDouble(), cy = 320 * (float)rng.NextDouble();
            float w = 8 + 120 * (float)rng.NextDouble(), h = 8 + 120 * (float)rng.NextDouble();
            anchors[4 * i] = cx - w / 2; anchors[4 * i + 1] = cy - h / 2; anchors[4 * i + 2] = cx + w / 2; anchors[4 * i + 3] = cy + h / 2;
        }
        var sizes = new ImageSize[n];
        for (int i = 0; i < n; i++) sizes[i] = new ImageSize(200 + rng.Next(121), 200 + rng.Next(121));
        if (half)
        {
            for (long i = 0; i < logits.LongLength; i++) logits[i] = (float)(Half)logits[i];
            for (int i = 0; i < reg.Length; i++) reg[i] = (float)(Half)reg[i];
        }
        return new Heads(n, a, k, logits, reg, anchors, sizes);
    }

    internal static List<DetectedObject>[] Cpu(DetectorFamily family, PostProcessOptions o, Heads h, int[] levels)
    {
        var result = new List<DetectedObject>[h.N];
        var retina = family == DetectorFamily.RetinaNet ? new RetinaNetPostProcessor(o) : null;
        var ssd = family == DetectorFamily.Ssd ? new SsdPostProcessor(o) : null;
        for (int i = 0; i < h.N; i++)
        {
            result[i] = [];
            var l = h.Logits.AsSpan((int)((long)i * h.A * h.K), h.A * h.K);
            var r = h.Reg.AsSpan(i * h.A * 4, h.A * 4);
            if (retina is not null) retina.Run(l, r, h.Anchors, levels, h.K, h.Sizes[i], result[i]);
            else ssd!.Run(l, r, h.Anchors, h.K, h.Sizes[i], result[i]);
        }
        return result;
    }

    internal static (IReadOnlyList<DetectedObject>[] Found, GpuDetectionsHost Fixed) Gpu(DetectorFamily family, PostProcessOptions o, Heads h, int[] levels, bool half)
    {
        var dev = Cuda.Gpu.Device;
        using var logits = half ? Tensor.FromSpan<Half>(ToHalf(h.Logits), new Shape(h.N, h.A, h.K), dev) : Tensor.FromSpan<float>(h.Logits, new Shape(h.N, h.A, h.K), dev);
        using var reg = half ? Tensor.FromSpan<Half>(ToHalf(h.Reg), new Shape(h.N, h.A, 4), dev) : Tensor.FromSpan<float>(h.Reg, new Shape(h.N, h.A, 4), dev);
        using var anchors = Tensor.FromSpan<float>(h.Anchors, new Shape(h.A, 4), dev);
        var coder = family == DetectorFamily.Ssd ? BoxCoder.Ssd : BoxCoder.RetinaNet;
        using var post = new GpuPostProcessor(family, o, coder, dev);
        using var d = post.Run(logits, reg, anchors, levels, h.Sizes);
        var fixedSize = new GpuDetectionsHost(d.Counts.Shape, d.Boxes.Shape, d.Scores.Shape, d.Labels.Shape,
            d.Counts.ToArray<int>(), d.Boxes.ToArray<float>(), d.Scores.ToArray<float>(), d.Labels.ToArray<int>());
        return (GpuPostProcessor.Download(d), fixedSize);
    }

    internal sealed record GpuDetectionsHost(Shape CountsShape, Shape BoxesShape, Shape ScoresShape, Shape LabelsShape, int[] Counts, float[] Boxes, float[] Scores, int[] Labels);

    private static Half[] ToHalf(float[] x)
    {
        var h = new Half[x.Length];
        for (int i = 0; i < x.Length; i++) h[i] = (Half)x[i];
        return h;
    }

    /// <summary>
    /// Asserts equal detections; returns (max score error, max box error). Order is compared exactly except inside runs of
    /// scores within 2e-6 relative of each other (exp on the GPU and MathF.Exp may round such near-ties apart differently):
    /// there the detections must match as a set.
    /// </summary>
    internal static (double Score, double Box) Compare(List<DetectedObject>[] cpu, IReadOnlyList<DetectedObject>[] gpu, string what)
    {
        Assert.Equal(cpu.Length, gpu.Length);
        double se = 0, be = 0;
        for (int i = 0; i < cpu.Length; i++)
        {
            if (cpu[i].Count != gpu[i].Count)
                Assert.Fail($"{what}: image {i}: GPU found {gpu[i].Count} detections, CPU {cpu[i].Count}");
            for (int j0 = 0; j0 < cpu[i].Count;)
            {
                int j1 = j0 + 1;
                while (j1 < cpu[i].Count && Math.Abs(cpu[i][j1].Score - cpu[i][j0].Score) <= 2e-6 * Math.Abs(cpu[i][j0].Score)) j1++;
                var used = new bool[j1 - j0];
                for (int j = j0; j < j1; j++)
                {
                    var c = cpu[i][j];
                    int match = -1;
                    // same position first, then any unmatched detection of the near-tie run
                    for (int t = 0; t < j1 - j0 && match < 0; t++)
                    {
                        int q = t == 0 ? j : j0 + t - (t <= j - j0 ? 1 : 0);
                        if (q < j0 || q >= j1 || used[q - j0]) continue;
                        if (Same(c, gpu[i][q])) match = q;
                    }
                    if (match < 0)
                        Assert.Fail($"{what}: image {i} detection {j}: CPU {c} has no GPU match (GPU at {j}: {gpu[i][j]})");
                    used[match - j0] = true;
                    var g = gpu[i][match];
                    se = Math.Max(se, Math.Abs(c.Score - g.Score));
                    be = Math.Max(be, Math.Max(Math.Max(Math.Abs(c.X1 - g.X1), Math.Abs(c.Y1 - g.Y1)), Math.Max(Math.Abs(c.X2 - g.X2), Math.Abs(c.Y2 - g.Y2))));
                }
                j0 = j1;
            }
        }
        return (se, be);
    }

    private static bool Same(DetectedObject c, DetectedObject g)
    {
        static bool Near(float x, float y, double atol, double rtol) => Math.Abs(x - y) <= atol + rtol * Math.Abs(x);
        return c.Label == g.Label && Near(c.Score, g.Score, 1e-6, 1e-5)
            && Near(c.X1, g.X1, 1e-4, 1e-6) && Near(c.Y1, g.Y1, 1e-4, 1e-6) && Near(c.X2, g.X2, 1e-4, 1e-6) && Near(c.Y2, g.Y2, 1e-4, 1e-6);
    }

    public static IEnumerable<object[]> SsdCases => new object[][]
    {
        // name, seed, N, anchors, classes, scale, bias, quant, fp16, k, D
        new object[] { "one image, odd anchors", 1, 1, 97, 5, 3f, 0f, 0f, false, 400, 200 },
        new object[] { "more candidates than k", 2, 3, 1001, 11, 2f, 0f, 0f, false, 400, 200 },
        new object[] { "small k and D", 3, 5, 333, 7, 2f, 0f, 0f, false, 5, 7 },
        new object[] { "ties (quantised logits)", 4, 3, 517, 6, 2f, 0f, 0.5f, false, 50, 100 },
        new object[] { "fp16 heads", 5, 2, 777, 9, 3f, 0f, 0f, true, 400, 200 },
        new object[] { "fp16 ties", 6, 3, 401, 4, 2f, 0f, 0.25f, true, 30, 40 },
        new object[] { "all below threshold (0.9)", 7, 3, 211, 5, 0.5f, -20f, 0f, false, 400, 200 },
        new object[] { "ssd300 shape, random logits", 8, 2, 8732, 91, 1f, 0f, 0f, false, 400, 200 },
        new object[] { "ssd300 shape, fp16", 9, 3, 8732, 91, 1f, 0f, 0f, true, 400, 200 },
    };

    [GpuTheory]
    [MemberData(nameof(SsdCases))]
    public void SsdMatchesCpu(string name, int seed, int n, int a, int k, float scale, float bias, float quant, bool half, int topk, int d)
    {
        // softmax ignores a common bias: the all-below case raises the threshold instead
        var o = PostProcessOptions.Ssd300Torchvision with { CandidatesPerLevel = topk, DetectionsPerImage = d, ScoreThreshold = bias < -10 ? 0.9f : 0.01f };
        var h = Make(seed, n, a, k, scale, bias, quant, half);
        var cpu = Cpu(DetectorFamily.Ssd, o, h, []);
        var (gpu, fixedSize) = Gpu(DetectorFamily.Ssd, o, h, [], half);
        var (se, be) = Compare(cpu, gpu, $"ssd {name}");
        CheckFixed(fixedSize, gpu, n, d);
        int total = 0;
        foreach (var c in cpu) total += c.Count;
        output.WriteLine($"ssd {name}: {total} detections, max score error {se:G3}, max box error {be:G3} px");
        if (bias < -10) Assert.Equal(0, total);
        else Assert.True(total > 0, "the case should produce detections");
    }

    public static IEnumerable<object[]> RetinaCases => new object[][]
    {
        // name, seed, N, anchors per level, classes, scale, bias, quant, fp16, k, D
        new object[] { "one image, odd levels", 11, 1, new[] { 81, 36, 9 }, 7, 4f, -2f, 0f, false, 1000, 300 },
        new object[] { "odd batch, chunked level (> 65536 logits)", 12, 3, new[] { 14400, 3600, 900, 225, 81 }, 7, 4f, -2f, 0f, false, 1000, 300 },
        new object[] { "more candidates than k, few survive", 13, 2, new[] { 2025, 507, 117 }, 9, 3f, -3f, 0f, false, 50, 20 },
        new object[] { "ties (quantised logits)", 14, 3, new[] { 1521, 441, 99 }, 5, 3f, -2f, 0.5f, false, 100, 300 },
        new object[] { "fp16 heads", 15, 2, new[] { 4096 * 3, 1024 * 3, 256 * 3 }, 11, 4f, -2f, 0f, true, 1000, 300 },
        new object[] { "single class above 512 (greedy NMS path)", 16, 2, new[] { 3000, 1200 }, 1, 3f, 1f, 0f, false, 1000, 300 },
        new object[] { "all below threshold", 17, 2, new[] { 900, 225 }, 7, 1f, -20f, 0f, false, 1000, 300 },
        new object[] { "offset strategy (<= 1000 candidates)", 18, 3, new[] { 450, 117 }, 4, 2.5f, -5f, 0f, false, 1000, 300 },
    };

    [GpuTheory]
    [MemberData(nameof(RetinaCases))]
    public void RetinaNetMatchesCpu(string name, int seed, int n, int[] levels, int k, float scale, float bias, float quant, bool half, int topk, int d)
    {
        var o = PostProcessOptions.RetinaNetTorchvision with { CandidatesPerLevel = topk, DetectionsPerImage = d };
        int a = 0;
        foreach (int l in levels) a += l;
        var h = Make(seed, n, a, k, scale, bias, quant, half);
        var cpu = Cpu(DetectorFamily.RetinaNet, o, h, levels);
        var (gpu, fixedSize) = Gpu(DetectorFamily.RetinaNet, o, h, levels, half);
        var (se, be) = Compare(cpu, gpu, $"retinanet {name}");
        CheckFixed(fixedSize, gpu, n, d);
        int total = 0;
        foreach (var c in cpu) total += c.Count;
        output.WriteLine($"retinanet {name}: {total} detections, max score error {se:G3}, max box error {be:G3} px");
        if (bias < -10) Assert.Equal(0, total);
        else Assert.True(total > 0, "the case should produce detections");
    }

    /// <summary>Counts [N], boxes [N, D, 4], scores/labels [N, D] hold what the packed download gave; rows past the count are zero with label -1.</summary>
    internal static void CheckFixed(GpuDetectionsHost f, IReadOnlyList<DetectedObject>[] found, int n, int d)
    {
        Assert.Equal(new Shape(n), f.CountsShape);
        Assert.Equal(new Shape(n, d, 4), f.BoxesShape);
        Assert.Equal(new Shape(n, d), f.ScoresShape);
        Assert.Equal(new Shape(n, d), f.LabelsShape);
        for (int i = 0; i < n; i++)
        {
            Assert.Equal(found[i].Count, f.Counts[i]);
            for (int r = 0; r < d; r++)
            {
                int o = i * d + r;
                if (r < f.Counts[i])
                {
                    var e = found[i][r];
                    Assert.Equal(e, new DetectedObject(f.Boxes[4 * o], f.Boxes[4 * o + 1], f.Boxes[4 * o + 2], f.Boxes[4 * o + 3], f.Scores[o], f.Labels[o]));
                    continue;
                }
                Assert.Equal(-1, f.Labels[o]);
                Assert.Equal(0f, f.Scores[o]);
                for (int c = 0; c < 4; c++) Assert.Equal(0f, f.Boxes[4 * o + c]);
            }
        }
    }

    [GpuFact]
    public void RepeatedRunsReuseScratchAndDoNotLeak()
    {
        var be = Cuda.Gpu.Backend;
        var dev = Cuda.Gpu.Device;
        be.Synchronize();
        long live = be.Memory.LiveBytes;
        var o = PostProcessOptions.Ssd300Torchvision;
        var h = Make(21, 4, 300, 6, 2f, 0f);
        var cpu = Cpu(DetectorFamily.Ssd, o, h, []);
        using (var anchors = Tensor.FromSpan<float>(h.Anchors, new Shape(h.A, 4), dev))
        using (var post = new GpuPostProcessor(DetectorFamily.Ssd, o, BoxCoder.Ssd, dev))
        {
            for (int rep = 0; rep < 3; rep++)
            {
                // a smaller batch after a larger one reuses the scratch
                int n = rep == 1 ? 2 : 4;
                using var l = Tensor.FromSpan<float>(h.Logits.AsSpan(0, n * h.A * h.K), new Shape(n, h.A, h.K), dev);
                using var r = Tensor.FromSpan<float>(h.Reg.AsSpan(0, n * h.A * 4), new Shape(n, h.A, 4), dev);
                using var d = post.Run(l, r, anchors, [], h.Sizes.AsSpan(0, n));
                var found = GpuPostProcessor.Download(d);
                Compare(cpu[..n], found, $"run {rep}");
            }
        }
        be.Synchronize();
        Assert.Equal(live, be.Memory.LiveBytes);
    }

    [GpuFact]
    public void BadInputsThrowClearErrors()
    {
        var dev = Cuda.Gpu.Device;
        using var logits = Tensor.Zeros(new Shape(2, 10, 3), DType.Float32, dev);
        using var reg = Tensor.Zeros(new Shape(2, 10, 4), DType.Float32, dev);
        using var regShort = Tensor.Zeros(new Shape(2, 9, 4), DType.Float32, dev);
        using var regHalf = Tensor.Zeros(new Shape(2, 10, 4), DType.Float16, dev);
        using var anchors = Tensor.Zeros(new Shape(10, 4), DType.Float32, dev);
        using var anchorsShort = Tensor.Zeros(new Shape(8, 4), DType.Float32, dev);
        using var cpuAnchors = Tensor.Zeros(new Shape(10, 4), DType.Float32);
        ImageSize[] sizes = [new(100, 100), new(90, 80)];
        using var ssd = new GpuPostProcessor(DetectorFamily.Ssd, PostProcessOptions.Ssd300Torchvision, BoxCoder.Ssd, dev);
        using var retina = new GpuPostProcessor(DetectorFamily.RetinaNet, PostProcessOptions.RetinaNetTorchvision, BoxCoder.RetinaNet, dev);
        Assert.Contains("regression [N, A, 4]", Assert.Throws<ArgumentException>(() => ssd.Run(logits, regShort, anchors, [], sizes)).Message);
        Assert.Contains("anchors must be float32 [10, 4]", Assert.Throws<ArgumentException>(() => ssd.Run(logits, reg, anchorsShort, [], sizes)).Message);
        Assert.Contains("both float16", Assert.Throws<ArgumentException>(() => ssd.Run(logits, regHalf, anchors, [], sizes)).Message);
        Assert.Contains("is on cpu", Assert.Throws<ArgumentException>(() => ssd.Run(logits, reg, cpuAnchors, [], sizes)).Message, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("2 images but 1 resized sizes", Assert.Throws<ArgumentException>(() => ssd.Run(logits, reg, anchors, [], sizes.AsSpan(0, 1))).Message);
        Assert.Contains("sum to 9", Assert.Throws<ArgumentException>(() => retina.Run(logits, reg, anchors, [5, 4], sizes)).Message);
        Assert.Contains("1 to 8 levels, got 0", Assert.Throws<ArgumentException>(() => retina.Run(logits, reg, anchors, [], sizes)).Message);
        Assert.Contains("1 to 8 levels, got 10", Assert.Throws<ArgumentException>(() => retina.Run(logits, reg, anchors, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1], sizes)).Message);
        using var wide = new GpuPostProcessor(DetectorFamily.RetinaNet, PostProcessOptions.RetinaNetTorchvision with { CandidatesPerLevel = 2000 }, BoxCoder.RetinaNet, dev);
        Assert.Contains("5 levels x 2000 candidates = 10000, at most 8192", Assert.Throws<ArgumentException>(() => wide.Run(logits, reg, anchors, [2, 2, 2, 2, 2], sizes)).Message);
        using var oneClass = Tensor.Zeros(new Shape(2, 10, 1), DType.Float32, dev);
        Assert.Contains("at least 2 classes", Assert.Throws<ArgumentException>(() => ssd.Run(oneClass, reg, anchors, [], sizes)).Message);
    }
}
