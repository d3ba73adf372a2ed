using Osprey.Core.Backends;
using Osprey.Core.Tensors;

namespace Osprey.Cuda;

// Kernels not yet written. MatMul and Conv2d belong to cuda-libs (cuBLAS/cuDNN), who delete these
// lines when adding CudaBackend.MatMul.cs and CudaBackend.Conv2d.cs.
public sealed partial class CudaBackend
{
    public void MatMul(Tensor a, Tensor b, bool transposeA, bool transposeB, Epilogue epilogue, Tensor y) => throw new NotImplementedException("cuda matmul");
    public void Conv2d(Tensor x, Tensor weight, Conv2dParams p, Epilogue epilogue, Tensor y) => throw new NotImplementedException("cuda conv2d");
}
