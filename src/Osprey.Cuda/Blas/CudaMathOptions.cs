namespace Osprey.Cuda;

/// <summary>
/// How a CUDA device computes matrix products and convolutions. Default: fp32 is exact fp32 (no TF32);
/// fp16 and bf16 accumulate in fp32. <see cref="AllowTf32"/> lets fp32 products and convolutions run on
/// TF32 tensor cores (10-bit mantissa inputs, about 1e-3 relative error; PyTorch's allow_tf32 = True).
/// </summary>
public sealed record CudaMathOptions(bool AllowTf32 = false)
{
    public static readonly CudaMathOptions Default = new();
}
