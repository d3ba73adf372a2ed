using Osprey.Core.Backends;
using Osprey.Core.Tensors;

namespace Osprey.Cuda;

// Backward kernels are not written for CUDA yet (docs/autograd.md lists them): each throws naming its op.
// The plan: conv via cudnnConvolutionBackwardData/BackwardFilter, the rest as NVRTC kernels beside their forward ones.
public sealed partial class CudaBackend
{
    public void UnaryBackward(UnaryOp op, Tensor x, Tensor y, Tensor gy, Tensor gx) => throw Missing($"{op.Kind.ToString().ToLowerInvariant()}_backward");

    public void Conv2dBackwardData(Tensor gy, Tensor weight, Conv2dParams p, Tensor gx) => throw Missing("conv2d_backward_data");

    public void Conv2dBackwardFilter(Tensor x, Tensor gy, Conv2dParams p, Tensor gw) => throw Missing("conv2d_backward_filter");

    public void Pool2dBackward(PoolKind kind, Tensor x, Tensor gy, Pool2dParams p, Tensor gx) =>
        throw Missing(kind == PoolKind.Max ? "max_pool2d_backward" : "avg_pool2d_backward");

    public void ResizeBackward(ResizeMode mode, Tensor gy, Tensor gx) =>
        throw Missing(mode == ResizeMode.Nearest ? "interpolate_nearest_backward" : "interpolate_bilinear_backward");

    public void ScatterAdd(Tensor gy, int axis, Tensor index, Tensor gx) => throw Missing("scatter_add (gather_backward)");

    private static NotSupportedException Missing(string op) =>
        new($"{op}: not implemented on CUDA yet (training runs on the CPU backend for now; see docs/autograd.md)");
}
