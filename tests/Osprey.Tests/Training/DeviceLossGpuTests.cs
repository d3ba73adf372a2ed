using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Detection.Training;
using Osprey.Detection.Training.Losses;
using Osprey.Detection.Training.Matching;
using Osprey.Tests.Cuda;
using Osprey.Tests.Support;
using Xunit;

namespace Osprey.Tests.Training;

/// <summary>
/// The fused device losses (<see cref="DeviceLoss"/>, Kernels/detect_loss.cu) against the host paths on seeded random inputs
/// with odd shapes (1237 anchors, some duplicated so IoU ties occur, one equal to a ground truth; 3 images, one without boxes):
/// matching equals <see cref="Matcher.MatchBoxes"/> exactly (torchvision RetinaNet with low-quality matches, ODTK 0.5 / 0.4,
/// SSD best-anchor forcing); RetinaNet (L1 and ODTK's smooth L1) and SSD (hard negatives, a crowded image whose ranking reaches
/// foreground) losses and gradients equal <see cref="RetinaNetLoss"/> / <see cref="SsdLoss"/> (float64 element math) in float32
/// and float16; no device memory is left behind; bad inputs throw.
/// </summary>
public class DeviceLossGpuTests
{
    private const int A = 1237;

    private static float[] Anchors()
    {
        var rng = new Random(11);
        var a = new float[A * 4];
        for (int j = 0; j < A; j++)
        {
            if (j % 97 == 5) { Array.Copy(a, (j - 1) * 4, a, j * 4, 4); continue; }   // duplicates: equal IoUs
            float x = (float)(rng.NextDouble() * 260), y = (float)(rng.NextDouble() * 260);
            float w = (float)(rng.NextDouble() * 80 + 8), h = (float)(rng.NextDouble() * 80 + 8);
            a[j * 4] = x; a[j * 4 + 1] = y; a[j * 4 + 2] = x + w; a[j * 4 + 3] = y + h;
        }
        return a;
    }

    /// <summary>Image 0: 4 boxes (the first equal to anchor 10), image 1: none, image 2: <paramref name="third"/> boxes.</summary>
    private static DetectionTarget[] Targets(float[] anchors, int classes, int firstLabel, int third)
    {
        var rng = new Random(12);
        DetectionTarget Make(int count, bool exact)
        {
            var boxes = new float[count * 4];
            var labels = new int[count];
            for (int b = 0; b < count; b++)
            {
                float x = (float)(rng.NextDouble() * 240), y = (float)(rng.NextDouble() * 240);
                float w = (float)(rng.NextDouble() * 90 + 10), h = (float)(rng.NextDouble() * 90 + 10);
                boxes[b * 4] = x; boxes[b * 4 + 1] = y; boxes[b * 4 + 2] = x + w; boxes[b * 4 + 3] = y + h;
                labels[b] = rng.Next(firstLabel, classes);
            }
            if (exact && count > 0) Array.Copy(anchors, 40, boxes, 0, 4);
            return new DetectionTarget(boxes, labels);
        }
        return [Make(4, true), Make(0, false), Make(third, false)];
    }

    [GpuTheory]
    [InlineData("retinanet")]
    [InlineData("odtk")]
    [InlineData("ssd")]
    public void Matching_equals_the_host_matcher(string kind)
    {
        var options = kind switch { "retinanet" => MatcherOptions.RetinaNet, "odtk" => MatcherOptions.Odtk, _ => MatcherOptions.Ssd };
        var anchors = Anchors();
        var targets = Targets(anchors, 9, 1, 13);
        using var dev = Tensor.FromSpan<float>(anchors, new Shape(A, 4), Gpu.Device);
        var (m, c, fg, packed, _) = DeviceLoss.Match(dev, targets, options, -1);
        using (m)
        using (c)
        using (fg)
        using (packed)
        {
            int[] matches = m.ToArray<int>(), classes = c.ToArray<int>(), counts = fg.ToArray<int>();
            for (int i = 0; i < targets.Length; i++)
            {
                int[] expected = Matcher.MatchBoxes(targets[i].Boxes, anchors, options);
                Assert.Equal(expected, matches.AsSpan(i * A, A).ToArray());
                Assert.Equal(expected.Count(v => v >= 0), counts[i]);
                for (int j = 0; j < A; j++)
                    Assert.Equal(expected[j] >= 0 ? targets[i].Labels[expected[j]] : -1, classes[i * A + j]);
            }
        }
    }

    /// <summary>Inputs rounded to <paramref name="dtype"/> on the GPU and the same values as float32 on the host.</summary>
    private static (Tensor Gpu, float[] Host) Values(string name, long count, float scale, Shape shape, DType dtype)
    {
        var v = Formula.Values(name, count).Select(x => x * scale).ToArray();
        using var f = Tensor.FromSpan<float>(v, shape, Gpu.Device);
        var t = dtype == DType.Float32 ? f.Share() : Op.Cast(f, dtype);
        if (dtype == DType.Float32) return (t, v);
        using var back = Op.Cast(t, DType.Float32);
        return (t, back.ToArray<float>());
    }

    private static float[] ToFloat(Tensor t)
    {
        if (t.DType == DType.Float32) return t.ToArray<float>();
        using var c = Op.Cast(t, DType.Float32);
        return c.ToArray<float>();
    }

    [GpuTheory]
    [InlineData("torchvision", DType.Float32)]
    [InlineData("torchvision", DType.Float16)]
    [InlineData("odtk", DType.Float32)]
    [InlineData("odtk", DType.Float16)]
    public void RetinaNet_loss_equals_the_host_loss(string kind, DType dtype)
    {
        var options = kind == "odtk" ? RetinaNetLossOptions.Odtk : RetinaNetLossOptions.Torchvision;
        const int n = 3, k = 7;
        const double scale = 8;
        var anchors = Anchors();
        var targets = Targets(anchors, k, 0, 9);
        var (tc, cls) = Values("dl.cls", (long)n * A * k, 4f, new Shape(n, A, k), dtype);
        var (tr, reg) = Values("dl.reg", (long)n * A * 4, 0.5f, new Shape(n, A, 4), dtype);
        using (tc)
        using (tr)
        {
            var gc = new float[cls.Length];
            var gb = new float[reg.Length];
            var expected = RetinaNetLoss.Compute(cls, reg, anchors, targets, k, options, gc, gb);
            using var r = HeadLoss.RetinaNet(tc, tr, anchors, targets, options, gradScale: scale);
            Assert.Equal(dtype, r.ClassGrad.DType);
            Assert.Equal(dtype, r.BoxGrad.DType);
            Assert.Equal(expected.Classification, r.Loss.Classification, 1e-5 * expected.Classification);
            Assert.Equal(expected.BoxRegression, r.Loss.BoxRegression, 1e-5 * expected.BoxRegression);
            double rtol = dtype == DType.Float32 ? 1e-4 : 2e-3;
            Close.Assert(gc.Select(v => (float)(v * scale)).ToArray(), ToFloat(r.ClassGrad), 1e-6, rtol, $"{kind} {dtype} class grad");
            Close.Assert(gb.Select(v => (float)(v * scale)).ToArray(), ToFloat(r.BoxGrad), 1e-6, rtol, $"{kind} {dtype} box grad");
        }
    }

    [GpuTheory]
    [InlineData(DType.Float32)]
    [InlineData(DType.Float16)]
    public void Ssd_loss_equals_the_host_loss(DType dtype)
    {
        const int n = 3, k = 5;
        const double scale = 8;
        var anchors = Anchors();
        // image 2 is crowded: three negatives per positive are more than it has, so the ranking reaches foreground
        var targets = Targets(anchors, k, 1, 60);
        var (tc, cls) = Values("dl.ssd.cls", (long)n * A * k, 4f, new Shape(n, A, k), dtype);
        var (tr, reg) = Values("dl.ssd.reg", (long)n * A * 4, 0.5f, new Shape(n, A, 4), dtype);
        using (tc)
        using (tr)
        {
            var gc = new float[cls.Length];
            var gb = new float[reg.Length];
            var expected = SsdLoss.Compute(cls, reg, anchors, targets, k, SsdLossOptions.Torchvision, gc, gb);
            using var r = HeadLoss.Ssd(tc, tr, anchors, targets, SsdLossOptions.Torchvision, gradScale: scale);
            Assert.Equal(expected.Classification, r.Loss.Classification, 1e-5 * expected.Classification);
            Assert.Equal(expected.BoxRegression, r.Loss.BoxRegression, 1e-5 * expected.BoxRegression);
            double rtol = dtype == DType.Float32 ? 1e-4 : 2e-3;
            Close.Assert(gc.Select(v => (float)(v * scale)).ToArray(), ToFloat(r.ClassGrad), 1e-6, rtol, $"ssd {dtype} class grad");
            Close.Assert(gb.Select(v => (float)(v * scale)).ToArray(), ToFloat(r.BoxGrad), 1e-6, rtol, $"ssd {dtype} box grad");
        }
    }

    [GpuFact]
    public void Device_losses_leave_no_memory_behind_and_refuse_bad_input()
    {
        const int n = 3, k = 7;
        var anchors = Anchors();
        var targets = Targets(anchors, k, 1, 9);
        using var tc = Rand.Tensor(1, new Shape(n, A, k), -4, 4, Gpu.Device);
        using var tr = Rand.Tensor(2, new Shape(n, A, 4), -1, 1, Gpu.Device);
        using var dev = Tensor.FromSpan<float>(anchors, new Shape(A, 4), Gpu.Device);
        using (var warm = HeadLoss.Ssd(tc, tr, dev, targets, SsdLossOptions.Torchvision)) _ = warm.Loss;
        var backend = Gpu.Backend;
        backend.Synchronize();
        long live = backend.Memory.LiveBytes, allocations = backend.Memory.LiveAllocations;
        for (int i = 0; i < 5; i++)
        {
            using (var r = HeadLoss.RetinaNet(tc, tr, dev, targets, RetinaNetLossOptions.Torchvision)) _ = r.Loss;
            using (var r = HeadLoss.Ssd(tc, tr, dev, targets, SsdLossOptions.Torchvision)) _ = r.Loss;
        }
        backend.Synchronize();
        Assert.Equal(live, backend.Memory.LiveBytes);
        Assert.Equal(allocations, backend.Memory.LiveAllocations);

        using var few = Tensor.FromSpan<float>(anchors.AsSpan(0, 400), new Shape(100, 4), Gpu.Device);
        Assert.Contains("anchors", Assert.Throws<ArgumentException>(() => HeadLoss.RetinaNet(tc, tr, few, targets, RetinaNetLossOptions.Torchvision)).Message);
        var bad = new[] { targets[0], targets[1], new DetectionTarget([0, 0, 10, 10], [k]) };
        Assert.Contains("label", Assert.Throws<ArgumentException>(() => HeadLoss.Ssd(tc, tr, dev, bad, SsdLossOptions.Torchvision)).Message);
        Assert.Throws<ArgumentException>(() => HeadLoss.RetinaNet(tc, tr, dev, targets[..2], RetinaNetLossOptions.Torchvision));
        var giou = RetinaNetLossOptions.Torchvision with { BoxLoss = BoxLossKind.GIoU };
        Assert.Throws<ArgumentException>(() => HeadLoss.RetinaNet(tc, tr, dev, targets, giou));
    }
}
