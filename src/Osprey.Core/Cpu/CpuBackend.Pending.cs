using Osprey.Core.Backends;
using Osprey.Core.Tensors;

namespace Osprey.Core.Cpu;

// Kernels not yet written. Each moves to its own file (CpuBackend.<Family>.cs) as it is implemented.
public sealed partial class CpuBackend
{
    public void Cast(Tensor x, Tensor y) => throw new NotImplementedException("cpu cast");
    public void Unary(UnaryOp op, Tensor x, Tensor y) => throw new NotImplementedException("cpu unary");
    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor y) => throw new NotImplementedException("cpu binary");
    public void Where(Tensor condition, Tensor a, Tensor b, Tensor y) => throw new NotImplementedException("cpu where");
    public void Reduce(ReduceOp op, Tensor x, int[] axes, Tensor y) => throw new NotImplementedException("cpu reduce");
    public void ArgMax(Tensor x, int axis, Tensor y) => throw new NotImplementedException("cpu argmax");
    public void Softmax(Tensor x, int axis, bool log, Tensor y) => throw new NotImplementedException("cpu softmax");
    public void TopK(Tensor x, int k, int axis, bool largest, Tensor values, Tensor indices) => throw new NotImplementedException("cpu topk");
    public void Gather(Tensor x, int axis, Tensor index, Tensor y) => throw new NotImplementedException("cpu gather");
    public void IndexSelect(Tensor x, int axis, Tensor index, Tensor y) => throw new NotImplementedException("cpu index_select");
    public void Pool2d(PoolKind kind, Tensor x, Pool2dParams p, Tensor y) => throw new NotImplementedException("cpu pool2d");
    public void Resize(ResizeMode mode, Tensor x, Tensor y) => throw new NotImplementedException("cpu resize");
}
