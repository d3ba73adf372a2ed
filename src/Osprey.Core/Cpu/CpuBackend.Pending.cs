using Osprey.Core.Backends;
using Osprey.Core.Tensors;

namespace Osprey.Core.Cpu;

// Kernels not yet written. Each moves to its own file (CpuBackend.<Family>.cs) as it is implemented.
public sealed partial class CpuBackend
{
    public void MatMul(Tensor a, Tensor b, bool transposeA, bool transposeB, Epilogue epilogue, Tensor y) => throw new NotImplementedException("cpu matmul");
    public void Conv2d(Tensor x, Tensor weight, Conv2dParams p, Epilogue epilogue, Tensor y) => throw new NotImplementedException("cpu conv2d");
}
