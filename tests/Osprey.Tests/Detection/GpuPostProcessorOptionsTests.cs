using Osprey.Core.Tensors;
using Osprey.Cuda.Detection;
using Osprey.Detection.Boxes;
using Osprey.Detection.Models;

namespace Osprey.Tests.Detection;

/// <summary>Host-side checks of the GPU post-processor that need no GPU: device and option limits, sort capacities.</summary>
public sealed class GpuPostProcessorOptionsTests
{
    [Fact]
    public void RefusesNonCudaDevices()
    {
        var e = Assert.Throws<ArgumentException>(() => new GpuPostProcessor(DetectorFamily.Ssd, PostProcessOptions.Ssd300Torchvision, BoxCoder.Ssd, Device.Cpu));
        Assert.Contains("not a CUDA device", e.Message);
    }

    [Fact]
    public void RefusesOptionsBeyondTheGpuLimits()
    {
        var dev = Device.Cuda(0);   // the limits are checked before the device is opened
        var k = Assert.Throws<ArgumentException>(() => new GpuPostProcessor(DetectorFamily.Ssd, PostProcessOptions.Ssd300Torchvision with { CandidatesPerLevel = 5000 }, BoxCoder.Ssd, dev));
        Assert.Contains("at most 4096 candidates per level/class on the GPU, got 5000", k.Message);
        var d = Assert.Throws<ArgumentException>(() => new GpuPostProcessor(DetectorFamily.RetinaNet, PostProcessOptions.RetinaNetTorchvision with { DetectionsPerImage = 3000 }, BoxCoder.RetinaNet, dev));
        Assert.Contains("at most 2048 detections per image on the GPU, got 3000", d.Message);
        Assert.Throws<ArgumentException>(() => new GpuPostProcessor(DetectorFamily.Ssd, PostProcessOptions.Ssd300Torchvision with { NmsThreshold = 2 }, BoxCoder.Ssd, dev));
    }

    [Theory]
    [InlineData(1, 64)]
    [InlineData(32, 64)]
    [InlineData(33, 128)]
    [InlineData(200, 512)]
    [InlineData(400, 1024)]
    [InlineData(1000, 2048)]
    [InlineData(2048, 4096)]
    [InlineData(4096, 4096)]
    public void SortCapacityIsAPowerOfTwoAtLeastTwiceK(int k, int cap)
    {
        Assert.Equal(cap, DetectionKernels.CapFor(k));
        Assert.True(DetectionKernels.CapFor(k) >= k);
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(0.45)]
    [InlineData(0.0)]
    [InlineData(1.0)]
    [InlineData(0.3)]
    [InlineData(0.7000000001)]
    public void FloatThresholdComparesLikeTheDoubleOne(double threshold)
    {
        float below = DetectParams.FloatAtOrBelow(threshold);
        Assert.True(below <= threshold);
        Assert.True(MathF.BitIncrement(below) > threshold);
        // every float near the threshold compares the same way against both
        float f = MathF.BitDecrement(MathF.BitDecrement(below));
        for (int i = 0; i < 5; i++, f = MathF.BitIncrement(f)) Assert.Equal(f > threshold, f > below);
    }
}
