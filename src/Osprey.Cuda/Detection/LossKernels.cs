using System.Runtime.InteropServices;
using Osprey.Cuda.Native;
using Osprey.Cuda.Runtime;

namespace Osprey.Cuda.Detection;

/// <summary>Matching settings and shapes (struct MatchP of Kernels/detect_loss.cu).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct LossMatchParams
{
    /// <summary>Images, anchors per image, ground-truth slots per image (the batch's largest count, at least 1).</summary>
    public int N, A, G;
    public float High, Low;
    /// <summary>1: torchvision's allow_low_quality_matches; ForceBest 1: SSD's best anchor per ground truth.</summary>
    public int LowQuality, ForceBest;
    /// <summary>The class written for anchors without a match (-1 RetinaNet, 0 SSD).</summary>
    public int Background;
}

/// <summary>Focal loss settings (struct FocalP of Kernels/detect_loss.cu).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct LossFocalParams
{
    public int N, A, K;
    public float Alpha, Gamma;
    public double GradScale;
}

/// <summary>Box loss settings (struct BoxP of Kernels/detect_loss.cu).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct LossBoxParams
{
    public int N, A, G;
    /// <summary>BoxCoder weights.</summary>
    public float Wx, Wy, Ww, Wh, Beta;
    /// <summary>Kind 0 L1, 1 smooth L1; PerImage 1 RetinaNet's per-image normalisation, 0 SSD's batch one.</summary>
    public int Kind, PerImage;
    public double GradScale;
}

/// <summary>
/// Launch wrappers of Kernels/detect_loss.cu (anchor matching, focal loss, SSD cross-entropy and hard-negative mining, box
/// losses) on one CUDA backend's stream. Callers (Osprey.Detection's DeviceLoss) validate shapes and zero the scratch the
/// kernels accumulate into; these only queue work (no host synchronisation).
/// </summary>
public sealed class LossKernels
{
    private const string Module = "detect_loss";
    /// <summary>Threads per block of the element-wise kernels.</summary>
    public const int Threads = 256;
    /// <summary>Most blocks (loss partials) of the grid-stride focal and box kernels.</summary>
    public const int MaxBlocks = 2048;
    private const int MineThreads = 1024;
    private readonly CudaBackend _b;

    public LossKernels(CudaBackend backend)
    {
        ArgumentNullException.ThrowIfNull(backend);
        _b = backend;
    }

    private nint Fn(string name) => _b.Kernels.Function(Module, name);

    private static string Suffix(int elementBytes, bool bf16) => (elementBytes, bf16) switch
    {
        (2, true) => "bf16",
        (2, false) => "f16",
        (4, false) => "f32",
        _ => throw new ArgumentException($"loss kernels: {elementBytes}-byte elements{(bf16 ? " marked bfloat16" : "")} (float32, float16 or bfloat16 only)"),
    };

    /// <summary>Blocks of a grid-stride kernel over <paramref name="items"/> items (also its count of loss partials).</summary>
    public static int Blocks(long items) => (int)Math.Clamp((items + Threads - 1) / Threads, 1, MaxBlocks);

    /// <summary>Fills <paramref name="count"/> 32-bit words at <paramref name="ptr"/> with zero on the stream.</summary>
    public void Zero(ulong ptr, long count) =>
        CuDriver.Check(CuDriver.cuMemsetD32Async(ptr, 0, (nuint)count, _b.Stream.Handle), "cuMemsetD32Async(loss scratch)");

    /// <summary>best [N, G] u64 (zeroed), then matches, classes [N, A] int32 and foreground counts [N] (zeroed).</summary>
    public void Match(ulong anchors, ulong targets, LossMatchParams p, ulong best, ulong matches, ulong classes, ulong foreground)
    {
        var grid = new Dim3((uint)((p.A + Threads - 1) / Threads), (uint)p.N);
        Launch.Kernel(Fn("match_best"), grid, Threads, 0, _b.Stream, anchors, targets, p, best);
        Launch.Kernel(Fn("match_assign"), grid, Threads, 0, _b.Stream, anchors, targets, p, best, matches, classes, foreground);
    }

    /// <summary>Focal loss over [N, A, K] logits into grad (same dtype); Blocks(N A K) partials.</summary>
    public void Focal(int elementBytes, bool bf16, ulong logits, ulong matches, ulong classes, ulong foreground, ulong grad, LossFocalParams p, ulong partials) =>
        Launch.Kernel(Fn("focal_" + Suffix(elementBytes, bf16)), (uint)Blocks((long)p.N * p.A * p.K), Threads, 0, _b.Stream,
            logits, matches, classes, foreground, grad, p, partials);

    /// <summary>Box loss over [N, A, 4] codes into grad (same dtype); Blocks(N A) partials.</summary>
    public void Box(int elementBytes, bool bf16, ulong regression, ulong anchors, ulong targets, ulong matches, ulong foreground, ulong grad, LossBoxParams p, ulong partials) =>
        Launch.Kernel(Fn("box_" + Suffix(elementBytes, bf16)), (uint)Blocks((long)p.N * p.A), Threads, 0, _b.Stream,
            regression, anchors, targets, matches, foreground, grad, p, partials);

    /// <summary>SSD: per-row log-sum-exp and cross-entropy (float32, [rows]).</summary>
    public void SsdCrossEntropy(int elementBytes, bool bf16, ulong logits, ulong classes, ulong ce, ulong lse, int rows, int k)
    {
        long threads = (long)rows * 32;
        Launch.Kernel(Fn("ssd_ce_" + Suffix(elementBytes, bf16)), (uint)((threads + Threads - 1) / Threads), Threads, 0, _b.Stream,
            logits, classes, ce, lse, rows, k);
    }

    /// <summary>SSD hard-negative mining: selection weights [N, A] and N partials.</summary>
    public void SsdMine(ulong ce, ulong classes, ulong foreground, ulong weight, ulong partials, int n, int a, int ratio, double gradScale) =>
        Launch.Kernel(Fn("ssd_mine"), (uint)n, MineThreads, 0, _b.Stream, ce, classes, foreground, weight, partials, n, a, ratio, gradScale);

    /// <summary>SSD cross-entropy gradient (softmax - one-hot) x weight into grad (the logits' dtype).</summary>
    public void SsdGrad(int elementBytes, bool bf16, ulong logits, ulong classes, ulong lse, ulong weight, ulong grad, int rows, int k)
    {
        long total = (long)rows * k;
        Launch.Kernel(Fn("ssd_grad_" + Suffix(elementBytes, bf16)), (uint)((total + Threads - 1) / Threads), Threads, 0, _b.Stream,
            logits, classes, lse, weight, grad, rows, k);
    }

    /// <summary>out[0] = the first clsCount partials' sum, out[1] = the next boxCount's (float64).</summary>
    public void Finish(ulong partials, int clsCount, int boxCount, ulong output) =>
        Launch.Kernel(Fn("loss_finish"), 1u, Threads, 0, _b.Stream, partials, clsCount, boxCount, output);
}
