using System.Runtime.InteropServices;
using Osprey.Cuda.Native;
using Osprey.Cuda.Runtime;

namespace Osprey.Cuda.Detection;

/// <summary>BoxCoder parameters as the kernels take them (struct Coder of Kernels/detect.cu).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct DetectCoder
{
    public float Wx, Wy, Ww, Wh, Clip;
    /// <summary>0 torchvision (clipped to the image), 1 ODTK inclusive corners (clamped to the level's bounds), 2 DLE centre-size (not clipped).</summary>
    public int Coding;
}

/// <summary>Shapes and options of one post-processing launch sequence (struct Params of Kernels/detect.cu).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct DetectParams
{
    /// <summary>Anchors per image, classes, candidates per segment, top-k sort capacity, segments per image, slots per image (Segments * K).</summary>
    public int Anchors, Classes, K, Cap, Segments, Slots;
    public float Threshold;
    public DetectCoder Coder;
    /// <summary>RetinaNet: logits at or below this cannot pass the threshold (skipped, as the CPU post-processor does).</summary>
    public float LogitFloor;
    /// <summary>
    /// The NMS threshold as the kernels compare it: torchvision, the largest float at or below it ((double)iou &gt; threshold
    /// exactly when iou &gt; IouBelow); ODTK and DLE, the threshold rounded to float32 (they compare in float32).
    /// </summary>
    public float IouBelow;
    /// <summary>1 for ODTK's +1 pixel widths and areas in the IoU, else 0.</summary>
    public float IouPlus;
    /// <summary>1: DLE's rule, a box survives only while its IoU is below the threshold; 0: removed when above.</summary>
    public int KeepBelow;
    /// <summary>1: equal scores put the higher anchor (selection) and the later slot (final order) first, as DLE; 0: the lower first.</summary>
    public int Reverse;
    /// <summary>Candidates per image in the first NMS pass (0: one full pass); see nms_class in Kernels/detect.cu.</summary>
    public int PrefixM;

    /// <summary>The largest float not above <paramref name="threshold"/>.</summary>
    public static float FloatAtOrBelow(double threshold)
    {
        float f = (float)threshold;
        return f > threshold ? MathF.BitDecrement(f) : f;
    }
}

/// <summary>Device pointers of the per-image candidate slots (struct Slots of Kernels/detect.cu).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct DetectSlots
{
    public ulong Box, Score, Label, Count, Kept, ImageMax, ImageTotal, ImageBound, ImageKept;
}

/// <summary>
/// RetinaNet feature levels: first anchor, anchors and first chunk of each (struct Levels of Kernels/detect.cu); for ODTK
/// (Odtk = 1) also each level's grid, anchors per location and clamp bounds (grid * stride - 1).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct DetectLevels
{
    public const int Max = 8;
    public int Count;
    public fixed int First[Max];
    public fixed int Anchors[Max];
    public fixed int Chunk0[Max + 1];
    public int Odtk;
    public int PerLocation;
    public fixed int GridH[Max];
    public fixed int GridW[Max];
    public fixed float MaxX[Max];
    public fixed float MaxY[Max];
}

/// <summary>
/// Launch wrappers of Kernels/detect.cu (decode, threshold, top-k, batched NMS, best detections) on one CUDA backend.
/// Callers (Osprey.Detection's GpuPostProcessor) validate shapes; these only queue kernels on the backend's stream.
/// </summary>
public sealed class DetectionKernels
{
    private const string Module = "detect";
    /// <summary>Threads of the top-k kernels (a multiple of 32; block_topk assumes it).</summary>
    public const int TopkThreads = 512;
    /// <summary>Largest top-k sort capacity (keys sorted in shared memory).</summary>
    public const int MaxCap = 4096;
    /// <summary>Largest candidate count per image that retina_group sorts (13-bit slots).</summary>
    public const int MaxGroupSlots = 8192;
    /// <summary>Logits per block in the first RetinaNet selection stage.</summary>
    public const int Chunk = 65536;
    private const int SoftmaxThreads = 256;
    private const int SharedLimit = 48 * 1024;
    private const int DynamicSharedMax = 64 * 1024;
    private readonly CudaBackend _b;
    private readonly HashSet<nint> _raised = [];

    public DetectionKernels(CudaBackend backend)
    {
        ArgumentNullException.ThrowIfNull(backend);
        _b = backend;
    }

    /// <summary>Top-k sort capacity for k candidates: a power of two, at least 2k (so one radix pass usually suffices), at most <see cref="MaxCap"/>.</summary>
    public static int CapFor(int k)
    {
        int p = 64;
        while (p < 2 * k && p < MaxCap) p <<= 1;
        return p;
    }

    private nint Fn(string name, int dynamicShared)
    {
        nint f = _b.Kernels.Function(Module, name);
        // static TopkState (~16.5 KB) plus a dynamic sort buffer (up to 64 KB) may pass the default 48 KB: raise the limit once
        if (dynamicShared > 0 && _raised.Add(f)) CuDriver.Check(CuDriver.cuFuncSetAttribute(f, 8, DynamicSharedMax), $"cuFuncSetAttribute({name})");
        return f;
    }

    /// <summary>
    /// Softmax of SSD logits [n, anchors, classes]; foreground probabilities above threshold become keys in per-(image,
    /// class) lists: cand [n * (classes - 1) * anchors] int64, candCount [n * (classes - 1)] int32 (zeroed here first).
    /// reverse: equal scores put the higher anchor first (DLE).
    /// </summary>
    public void SsdSoftmax(bool half, ulong logits, ulong cand, ulong candCount, int n, int anchors, int classes, float threshold, bool reverse)
    {
        CuDriver.Check(CuDriver.cuMemsetD32Async(candCount, 0, (nuint)((long)n * (classes - 1)), _b.Stream.Handle), "cuMemsetD32Async(ssd candidate counts)");
        // rows of logits, then one maximum and one reciprocal per row
        int apb = Math.Clamp(SharedLimit / 4 / (classes + 2), 1, SoftmaxThreads);
        uint shared = (uint)(apb * (classes + 2) * 4);
        Launch.Kernel(Fn(half ? "ssd_softmax_f16" : "ssd_softmax_f32", (int)shared), new Dim3((uint)((anchors + apb - 1) / apb), (uint)n), SoftmaxThreads, shared, _b.Stream,
            logits, cand, candCount, anchors, classes, apb, threshold, reverse ? 1 : 0);
    }

    public void SsdSelect(bool half, ulong cand, ulong candCount, ulong regression, ulong anchors, ulong sizes, int n, DetectParams p, DetectSlots s) =>
        Launch.Kernel(Fn(half ? "ssd_select_f16" : "ssd_select_f32", p.Cap * 8), new Dim3((uint)p.Segments, (uint)n), TopkThreads, (uint)(p.Cap * 8), _b.Stream,
            cand, candCount, regression, anchors, sizes, p, s);

    public void RetinaChunk(bool half, ulong logits, DetectLevels levels, int n, DetectParams p, ulong chunkKeys, ulong chunkCounts)
    {
        int chunks;
        unsafe { chunks = levels.Chunk0[levels.Count]; }
        Launch.Kernel(Fn(half ? "retina_chunk_f16" : "retina_chunk_f32", p.Cap * 8), new Dim3((uint)chunks, (uint)n), TopkThreads, (uint)(p.Cap * 8), _b.Stream,
            logits, levels, Chunk, p, chunkKeys, chunkCounts);
    }

    public void RetinaMerge(bool half, ulong chunkKeys, ulong chunkCounts, DetectLevels levels, ulong regression, ulong anchors, ulong sizes, int n, DetectParams p, DetectSlots s) =>
        Launch.Kernel(Fn(half ? "retina_merge_f16" : "retina_merge_f32", p.Cap * 8), new Dim3((uint)levels.Count, (uint)n), TopkThreads, (uint)(p.Cap * 8), _b.Stream,
            chunkKeys, chunkCounts, levels, regression, anchors, sizes, p, s);

    public void RetinaGroup(int n, DetectParams p, DetectSlots s, ulong grpSlot, ulong grpStart, ulong grpEnd)
    {
        int n2 = 2;
        while (n2 < p.Slots) n2 <<= 1;
        Launch.Kernel(Fn("retina_group", n2 * 8), (uint)n, TopkThreads, (uint)(n2 * 8), _b.Stream, p, s, grpSlot, grpStart, grpEnd);
    }

    /// <summary>Per image: candidate count, largest coordinate (only with at most offsetLimit candidates) and the NMS prefix bound.</summary>
    public void ImageStats(int n, DetectParams p, DetectSlots s, int offsetLimit)
    {
        int cap = CapFor(Math.Max(p.PrefixM, 1));
        Launch.Kernel(Fn("image_stats", cap * 8), (uint)n, TopkThreads, (uint)(cap * 8), _b.Stream, p, s, cap, offsetLimit);
    }

    /// <summary>
    /// Both NMS passes (the prefix pass, then the full pass for images whose prefix kept fewer than
    /// <paramref name="detections"/>). grpSlot 0 for SSD (groups are the class segments), else RetinaNet's class groups;
    /// offsetLimit -1 never uses batched_nms's coordinate offsets.
    /// </summary>
    public void NmsClass(int n, int groups, int detections, DetectParams p, DetectSlots s, ulong grpSlot, ulong grpStart, ulong grpEnd, int offsetLimit)
    {
        nint f = Fn("nms_class", 0);
        for (int pass = 0; pass < 2; pass++)
            Launch.Kernel(f, new Dim3((uint)groups, (uint)n), 256, 0, _b.Stream, p, s, grpSlot, grpStart, grpEnd, groups, offsetLimit, detections, pass);
    }

    public void FinalTopD(int n, int detections, DetectParams p, DetectSlots s, ulong counts, ulong boxes, ulong scores, ulong labels, ulong packed)
    {
        int cap = CapFor(detections);
        Launch.Kernel(Fn("final_topd", cap * 8), (uint)n, TopkThreads, (uint)(cap * 8), _b.Stream, p, s, detections, cap, n, counts, boxes, scores, labels, packed);
    }
}
