using Osprey.Core.Tensors;
using Osprey.Detection.Training;
using Osprey.Detection.Training.Losses;
using Osprey.Tests.Cuda;
using Osprey.Tests.Support;

namespace Osprey.Tests.Training;

/// <summary>The device paths of the training pieces on a CUDA GPU (skipped without one): optimiser steps against torch's
/// goldens with parameters, gradients and state on the GPU, and the op-composed focal loss (focalOnDevice: true; DeviceLossGpuTests
/// covers the fused device loss) against the host loss.</summary>
public class TrainingGpuTests
{
    [GpuFact] public void Sgd_on_the_gpu_matches_torch() => OptimizerTests.Run("sgd", DType.Float32, 2e-6, 1e-5, Gpu.Device);

    [GpuFact] public void AdamW_on_the_gpu_matches_torch() => OptimizerTests.Run("adamw_amsgrad", DType.Float32, 2e-6, 1e-5, Gpu.Device);

    [GpuFact] public void Half_parameters_on_the_gpu_follow_fp32_masters() => OptimizerTests.Run("adamw", DType.Float16, 1e-3, 1e-3, Gpu.Device);

    [GpuFact]
    public void Focal_loss_on_the_gpu_equals_the_host_loss()
    {
        var (anchors, cls, reg, targets, n, a, k) = TrainFixtures.RetinaHeads();
        using var hc = Tensor.FromSpan<float>(cls, new Shape(n, a, k));
        using var hr = Tensor.FromSpan<float>(reg, new Shape(n, a, 4));
        using var gc = Tensor.FromSpan<float>(cls, new Shape(n, a, k), Gpu.Device);
        using var gr = Tensor.FromSpan<float>(reg, new Shape(n, a, 4), Gpu.Device);
        using var host = HeadLoss.RetinaNet(hc, hr, anchors, targets, RetinaNetLossOptions.Torchvision);
        using var gpu = HeadLoss.RetinaNet(gc, gr, anchors, targets, RetinaNetLossOptions.Torchvision, focalOnDevice: true);
        Assert.Equal(Gpu.Device, gpu.ClassGrad.Device);
        Assert.Equal(Gpu.Device, gpu.BoxGrad.Device);
        Assert.Equal(host.Loss.Classification, gpu.Loss.Classification, 1e-5 * host.Loss.Classification);
        Assert.Equal(host.Loss.BoxRegression, gpu.Loss.BoxRegression, 1e-12);
        Close.Assert(host.ClassGrad.ToArray<float>(), gpu.ClassGrad.ToArray<float>(), 1e-6, 1e-4, "gpu focal grad");
        Close.Assert(host.BoxGrad.ToArray<float>(), gpu.BoxGrad.ToArray<float>(), 0, 0, "gpu box grad");
    }
}
