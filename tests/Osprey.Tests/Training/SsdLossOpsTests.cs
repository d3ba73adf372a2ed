using Osprey.Core.Tensors;
using Osprey.Detection.Training;
using Osprey.Detection.Training.Losses;
using Osprey.Tests.Cuda;
using Osprey.Tests.Support;
using Xunit;

namespace Osprey.Tests.Training;

/// <summary><see cref="SsdLossOps"/> (the cross-entropy on the logits' device, hard negatives ranked from the downloaded
/// per-anchor losses) equals the host <see cref="SsdLoss"/> (itself checked against torchvision's compute_loss in
/// <see cref="LossTests"/>) on the fixture's normal and crowded SSD cases, with a loss scale; on the CPU and on a GPU.</summary>
public class SsdLossOpsTests
{
    internal static void Check(string name, Device device)
    {
        var c = TrainFixtures.Case(TrainFixtures.Losses, name);
        int n = c.GetProperty("images").GetInt32(), k = c.GetProperty("classes").GetInt32();
        var anchors = TrainFixtures.Floats(c.GetProperty("anchors"));
        int a = anchors.Length / 4;
        var cls = Formula.Values(name + ".cls", (long)n * a * k).Select(v => v * 4f).ToArray();
        var reg = Formula.Values(name + ".reg", (long)n * a * 4).Select(v => v * 0.5f).ToArray();
        var boxes = c.GetProperty("boxes").EnumerateArray().ToArray();
        var labels = c.GetProperty("labels").EnumerateArray().ToArray();
        var targets = Enumerable.Range(0, n).Select(i => new DetectionTarget(TrainFixtures.Floats(boxes[i]), labels[i].EnumerateArray().Select(v => v.GetInt32()).ToArray())).ToArray();
        var gc = new float[cls.Length];
        var gb = new float[reg.Length];
        var expected = SsdLoss.Compute(cls, reg, anchors, targets, k, SsdLossOptions.Torchvision, gc, gb);
        using var tc = Tensor.FromSpan<float>(cls, new Shape(n, a, k), device);
        using var tr = Tensor.FromSpan<float>(reg, new Shape(n, a, 4), device);
        using var r = HeadLoss.Ssd(tc, tr, anchors, targets, SsdLossOptions.Torchvision, gradScale: 8, clsOnDevice: true);
        Assert.Equal(device, r.ClassGrad.Device);
        Assert.Equal(expected.Classification, r.Loss.Classification, 1e-5 * expected.Classification);
        Assert.Equal(expected.BoxRegression, r.Loss.BoxRegression, 1e-12);
        Close.Assert(gc.Select(v => v * 8).ToArray(), r.ClassGrad.ToArray<float>(), 1e-6, 1e-4, $"{name} class grad");
        Close.Assert(gb.Select(v => v * 8).ToArray(), r.BoxGrad.ToArray<float>(), 0, 1e-6, $"{name} box grad");
    }

    [Theory]
    [InlineData("ssd")]
    [InlineData("ssd_crowded")]
    public void Device_cross_entropy_equals_the_host_loss(string name) => Check(name, Device.Cpu);

    [GpuTheory]
    [InlineData("ssd")]
    [InlineData("ssd_crowded")]
    public void Device_cross_entropy_on_the_gpu_equals_the_host_loss(string name) => Check(name, Gpu.Device);
}
