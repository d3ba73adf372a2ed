using Osprey.Core.Autograd;
using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Tests.Support;

namespace Osprey.Tests.Cuda;

/// <summary>
/// CUDA has no backward kernels yet (docs/autograd.md): backward through a CUDA convolution must fail with a
/// NotSupportedException naming the op, while backward through composed ops (mul, sum) already works there.
/// </summary>
[Collection(GpuCollection.Name)]
public sealed class BackwardGpuTests
{
    [GpuFact]
    public void Conv_backward_on_cuda_names_the_missing_kernel()
    {
        using var hx = Rand.Tensor(1, new Shape(1, 3, 5, 5));
        using var hw = Rand.Tensor(2, new Shape(4, 3, 3, 3));
        using var x = Op.To(hx, Gpu.Device);
        using var w = new Parameter(Op.To(hw, Gpu.Device), "w");
        using var tape = new GradTape([w]);
        using var y = Op.Conv2d(x, w.Value, Conv2dParams.Square(1, 1));
        using var s = Op.Sum(y);
        var e = Assert.Throws<NotSupportedException>(() => tape.Backward(s));
        Assert.Contains("conv2d_backward_filter", e.Message, StringComparison.Ordinal);
    }

    [GpuFact]
    public void Composed_backward_runs_on_cuda()
    {
        using var ha = Tensor.FromArray(new[] { 1f, 2f, 3f }, 3);
        using var w = new Parameter(Op.To(ha, Gpu.Device), "w");
        using (var tape = new GradTape([w]))
        {
            using var y = Op.Mul(w.Value, w.Value);
            using var s = Op.Sum(y);
            tape.Backward(s);
        }
        using var g = Op.To(w.Grad!, Device.Cpu);
        Assert.Equal(new[] { 2f, 4f, 6f }, g.ToArray<float>());
    }
}
