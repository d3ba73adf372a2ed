using System.Runtime.InteropServices;
using Osprey.Cuda.Runtime;

namespace Osprey.Cuda.Training;

/// <summary>One parameter of a multi-tensor optimiser step (struct OptEntry of Kernels/optim.cu, 64 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct OptEntry
{
    /// <summary>Device addresses of the parameter (float32 ones are their own master) and of its contiguous gradient.</summary>
    public ulong Param, Grad;
    /// <summary>First element of the parameter's slice of the flat state buffers, and its element count.</summary>
    public long Flat, Numel;
    /// <summary>Dtype codes (<see cref="OptimizerKernels.DTypeCode"/>) of the parameter and of the gradient.</summary>
    public int ParamType, GradType;
    /// <summary>1 for a channels-last [N, C, H, W] parameter (its state and gradient are in NCHW order); C and H x W.</summary>
    public int Nhwc, C, Hw;
    /// <summary>SGD: the momentum buffer is unwritten (the step sets it to d, as torch's first step).</summary>
    public int Fresh;
    private readonly int _pad0, _pad1;
}

/// <summary>One block's work: chunk <see cref="Chunk"/> (of <see cref="OptimizerKernels.ChunkElements"/> elements) of entry <see cref="Entry"/>.</summary>
[StructLayout(LayoutKind.Sequential)]
public readonly record struct OptChunk(int Entry, int Chunk);

/// <summary>What optim_finalize leaves on the device (struct OptStatus of Kernels/optim.cu, 24 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct OptStatus
{
    /// <summary>The global norm of the unscaled gradients (NaN when clipping is off).</summary>
    public double Norm;
    /// <summary>The factor the update multiplied every gradient by: (float)(inverse scale x clip coefficient).</summary>
    public float Factor;
    /// <summary>1 when some gradient holds an inf or NaN.</summary>
    public int FoundInf;
    /// <summary>Sum of squares of the gradients as they were (scaled).</summary>
    public double SumSquares;
}

/// <summary>The optimiser's scalars, each rounded to float32 as the per-tensor ops round them (struct OptHyper of Kernels/optim.cu).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct OptHyper
{
    /// <summary>SGD: learning rate, weight decay, momentum, 1 - dampening.</summary>
    public float Lr, WeightDecay, Momentum, OneMinusDampening;
    public int Nesterov;
    /// <summary>AdamW: 1 - lr x weight decay.</summary>
    public float Decay;
    /// <summary>AdamW: beta1, 1 - beta1, beta2, 1 - beta2, sqrt(1 - beta2^t), eps, lr / (1 - beta1^t).</summary>
    public float Beta1, OneMinusBeta1, Beta2, OneMinusBeta2, Bc2, Eps, StepSize;
    public int HasDecay, AmsGrad;
    /// <summary>1: a status with FoundInf set makes the update do nothing (amp).</summary>
    public int SkipOnInf;
}

/// <summary>
/// Launch wrappers of Kernels/optim.cu on one CUDA backend's stream. Callers (Osprey.Detection's MultiTensorStep) build and
/// validate the entry and chunk tables; these only queue kernels.
/// </summary>
public sealed class OptimizerKernels
{
    private const string Module = "optim";
    /// <summary>Elements per block (OPT_CHUNK of Kernels/optim.cu).</summary>
    public const int ChunkElements = 8192;
    private const int Threads = 256;
    private readonly CudaBackend _b;

    public OptimizerKernels(CudaBackend backend)
    {
        ArgumentNullException.ThrowIfNull(backend);
        _b = backend;
    }

    /// <summary>The kernels' dtype code: 0 float32, 1 float16, 2 bfloat16, -1 otherwise.</summary>
    public static int DTypeCode(Osprey.Core.Tensors.DType dtype) => dtype switch
    {
        Osprey.Core.Tensors.DType.Float32 => 0,
        Osprey.Core.Tensors.DType.Float16 => 1,
        Osprey.Core.Tensors.DType.BFloat16 => 2,
        _ => -1,
    };

    /// <summary>partials[c] = sum of squares of chunk c's gradient elements (float32), one block per chunk.</summary>
    public void SumSquares(ulong entries, ulong chunks, int chunkCount, ulong partials) =>
        Launch.Kernel(_b.Fn(Module, "optim_sumsq"), (uint)chunkCount, Threads, 0, _b.Stream, entries, chunks, partials);

    /// <summary>One block: the partials summed in float64 -> <see cref="OptStatus"/> at <paramref name="status"/>.</summary>
    public void Finalize(ulong partials, int count, float inverseScale, double clipNorm, bool checkFinite, ulong status) =>
        Launch.Kernel(_b.Fn(Module, "optim_finalize"), 1u, Threads, 0, _b.Stream, partials, count, inverseScale, clipNorm, checkFinite ? 1 : 0, status);

    /// <summary>torch.optim.SGD on every entry; status 0: the gradients are used as they are.</summary>
    public void Sgd(ulong entries, ulong chunks, int chunkCount, ulong masters, ulong momentum, ulong status, OptHyper h) =>
        Launch.Kernel(_b.Fn(Module, "optim_sgd"), (uint)chunkCount, Threads, 0, _b.Stream, entries, chunks, masters, momentum, status, h);

    /// <summary>torch.optim.AdamW on every entry; maxExpAvgSq 0 without amsgrad.</summary>
    public void AdamW(ulong entries, ulong chunks, int chunkCount, ulong masters, ulong expAvg, ulong expAvgSq, ulong maxExpAvgSq, ulong status, OptHyper h) =>
        Launch.Kernel(_b.Fn(Module, "optim_adamw"), (uint)chunkCount, Threads, 0, _b.Stream, entries, chunks, masters, expAvg, expAvgSq, maxExpAvgSq, status, h);
}
