using Osprey.Core.Backends;
using Osprey.Core.Tensors;

namespace Osprey.Cuda;

// Kernels not yet written. Each moves to its own file (CudaBackend.<Family>.cs) as it is implemented;
// MatMul and Conv2d belong to cuda-libs (cuBLAS/cuDNN).
public sealed partial class CudaBackend
{
    public void Copy(Tensor source, Tensor destination) => throw new NotImplementedException("cuda copy");
    public void Fill(Tensor destination, double value) => throw new NotImplementedException("cuda fill");
    public void Cast(Tensor x, Tensor y) => throw new NotImplementedException("cuda cast");
    public void Unary(UnaryOp op, Tensor x, Tensor y) => throw new NotImplementedException("cuda unary");
    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor y) => throw new NotImplementedException("cuda binary");
    public void Where(Tensor condition, Tensor a, Tensor b, Tensor y) => throw new NotImplementedException("cuda where");
    public void Reduce(ReduceOp op, Tensor x, int[] axes, Tensor y) => throw new NotImplementedException("cuda reduce");
    public void ArgMax(Tensor x, int axis, Tensor y) => throw new NotImplementedException("cuda argmax");
    public void Softmax(Tensor x, int axis, bool log, Tensor y) => throw new NotImplementedException("cuda softmax");
    public void TopK(Tensor x, int k, int axis, bool largest, Tensor values, Tensor indices) => throw new NotImplementedException("cuda topk");
    public void Gather(Tensor x, int axis, Tensor index, Tensor y) => throw new NotImplementedException("cuda gather");
    public void IndexSelect(Tensor x, int axis, Tensor index, Tensor y) => throw new NotImplementedException("cuda index_select");
    public void Pool2d(PoolKind kind, Tensor x, Pool2dParams p, Tensor y) => throw new NotImplementedException("cuda pool2d");
    public void Resize(ResizeMode mode, Tensor x, Tensor y) => throw new NotImplementedException("cuda resize");
}
