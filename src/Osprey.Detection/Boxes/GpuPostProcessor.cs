using System.Runtime.InteropServices;
using Osprey.Core.Backends;
using Osprey.Core.Tensors;
using Osprey.Cuda;
using Osprey.Cuda.Detection;
using Osprey.Detection.Models;

namespace Osprey.Detection.Boxes;

/// <summary>
/// Post-processing of a whole batch on a CUDA device (Kernels/detect.cu): the same candidates, order and
/// detections as the CPU post-processor of the family (<see cref="RetinaNetPostProcessor"/> / <see cref="SsdPostProcessor"/>,
/// hence torchvision; <see cref="OdtkPostProcessor"/>; <see cref="NvidiaSsdPostProcessor"/>), with float32 or float16 head
/// outputs, fixed-size outputs and no host synchronisation until <see cref="Download"/>. Boxes come out as the CPU
/// post-processor gives them: resized-image pixels (torchvision), ODTK's inclusive pixels on the padded input, or DLE's
/// relative corners. Scratch buffers are allocated on first use for the largest batch and anchor count seen and reused.
/// One instance per detector; not thread-safe.
/// </summary>
/// <remarks>
/// GPU limits (each checked with a clear error): candidates per level/class at most 4096; detections per image
/// at most 2048; RetinaNet and ODTK: at most 8 levels and levels x candidates at most 8192.
/// </remarks>
public sealed class GpuPostProcessor : IDisposable
{
    /// <summary>batched_nms uses the coordinate-offset strategy up to this many boxes (torchvision's CPU rule, as <see cref="Nms.Batched"/>).</summary>
    private const int OffsetLimit = 1000;
    /// <summary>The first NMS pass covers each image's best PrefixFactor x D candidates (see nms_class in Kernels/detect.cu).</summary>
    private const int PrefixFactor = 2;
    private readonly CudaBackend _backend;
    private readonly DetectionKernels _kernels;
    private readonly List<Tensor> _scratch = [];
    private Tensor? _cand, _candCount, _chunkKeys, _chunkCounts, _box, _score, _label, _count, _kept, _imgMax, _imgTotal, _imgBound, _imgKept, _grpSlot, _grpStart, _grpEnd, _sizes;
    private int[] _sizesHost = [];
    private int _sizesUsed;
    private bool _disposed;

    public GpuPostProcessor(DetectorFamily family, PostProcessOptions options, BoxCoder coder, Device device)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (device.Type != DeviceType.Cuda) throw new ArgumentException($"gpu postprocess: device {device} is not a CUDA device");
        if (options.CandidatesPerLevel > DetectionKernels.MaxCap)
            throw new ArgumentException($"gpu postprocess: at most {DetectionKernels.MaxCap} candidates per level/class on the GPU, got {options.CandidatesPerLevel}");
        if (options.DetectionsPerImage > DetectionKernels.MaxCap / 2)
            throw new ArgumentException($"gpu postprocess: at most {DetectionKernels.MaxCap / 2} detections per image on the GPU, got {options.DetectionsPerImage}");
        var want = family switch
        {
            DetectorFamily.OdtkRetinaNet => BoxCoding.OdtkInclusive,
            DetectorFamily.NvidiaSsd => BoxCoding.CenterSize,
            _ => BoxCoding.Torchvision,
        };
        if (coder.Coding != want)
            throw new ArgumentException($"gpu postprocess: the {family} family decodes with {want} box coding, got a {coder.Coding} coder");
        Family = family;
        Options = options;
        Coder = coder;
        Device = device;
        _backend = (CudaBackend)BackendRegistry.Get(device);
        _kernels = new DetectionKernels(_backend);
    }

    public DetectorFamily Family { get; }
    public PostProcessOptions Options { get; }
    public BoxCoder Coder { get; }
    public Device Device { get; }

    /// <summary>Runs on a model's head outputs (see the other overload).</summary>
    public GpuDetections Run(HeadOutputs heads, Tensor anchors, ReadOnlySpan<int> anchorsPerLevel, ReadOnlySpan<ImageSize> resizedSizes)
    {
        ArgumentNullException.ThrowIfNull(heads);
        return Run(heads.ClassLogits, heads.BoxRegression, anchors, anchorsPerLevel, resizedSizes);
    }

    /// <summary>Runs on a model's head outputs with the padded input size (any family; see the full overload).</summary>
    public GpuDetections Run(HeadOutputs heads, Tensor anchors, ReadOnlySpan<int> anchorsPerLevel, ReadOnlySpan<ImageSize> resizedSizes, ImageSize input)
    {
        ArgumentNullException.ThrowIfNull(heads);
        return Run(heads.ClassLogits, heads.BoxRegression, anchors, anchorsPerLevel, resizedSizes, heads.Grids, input);
    }

    /// <summary>The torchvision and DLE families (see the full overload; ODTK needs the grids and the input size).</summary>
    public GpuDetections Run(Tensor logits, Tensor regression, Tensor anchors, ReadOnlySpan<int> anchorsPerLevel, ReadOnlySpan<ImageSize> resizedSizes) =>
        Run(logits, regression, anchors, anchorsPerLevel, resizedSizes, [], default);

    /// <summary>
    /// Queues the post-processing of a batch. logits [N, A, K] and regression [N, A, 4] (float32 or float16, same
    /// dtype, contiguous, on this device); anchors [A, 4] float32 (x1, y1, x2, y2 pixels) on this device;
    /// anchorsPerLevel: RetinaNet's anchors per feature level (summing to A; ignored for SSD); resizedSizes: each
    /// image's resized size (boxes are clipped to it). The result's tensors are new (the caller disposes them); the
    /// scratch is reused by the next Run, which the stream orders after this one.
    /// ODTK (<see cref="DetectorFamily.OdtkRetinaNet"/>): <paramref name="grids"/> (each level's feature grid) and the padded
    /// <paramref name="input"/> size are needed (anchors per level follow from them; ODTK clamps boxes to each level's
    /// grid * stride - 1); the other families ignore them. DLE (<see cref="DetectorFamily.NvidiaSsd"/>): anchors are its
    /// (cx, cy, w, h) default boxes and boxes are not clipped (resizedSizes are still checked).
    /// </summary>
    public GpuDetections Run(Tensor logits, Tensor regression, Tensor anchors, ReadOnlySpan<int> anchorsPerLevel, ReadOnlySpan<ImageSize> resizedSizes,
        ReadOnlySpan<ImageSize> grids, ImageSize input)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var (n, a, k, half) = Check(logits, regression, anchors, resizedSizes);
        _backend.MakeCurrent();
        UploadSizes(resizedSizes);
        int topk = Options.CandidatesPerLevel, d = Options.DetectionsPerImage;
        bool odtk = Family == DetectorFamily.OdtkRetinaNet, dle = Family == DetectorFamily.NvidiaSsd;
        var p = new DetectParams
        {
            Anchors = a, Classes = k, K = topk, Cap = DetectionKernels.CapFor(topk), Threshold = Options.ScoreThreshold,
            Coder = new DetectCoder { Wx = Coder.Wx, Wy = Coder.Wy, Ww = Coder.Ww, Wh = Coder.Wh, Clip = Coder.Clip, Coding = odtk ? 1 : dle ? 2 : 0 },
            // the same shortcut value as RetinaNetPostProcessor: a logit below logit(thr) - margin cannot pass
            LogitFloor = Options.ScoreThreshold <= 0 ? float.NegativeInfinity : MathF.Log(Options.ScoreThreshold / (1 - Options.ScoreThreshold)) - 1e-3f,
            // torchvision compares the float32 IoU in double; ODTK and DLE compare it with the float32 threshold
            IouBelow = odtk || dle ? (float)Options.NmsThreshold : DetectParams.FloatAtOrBelow(Options.NmsThreshold),
            IouPlus = odtk ? 1 : 0,
            KeepBelow = dle ? 1 : 0,
            Reverse = dle ? 1 : 0,
            PrefixM = Math.Min(PrefixFactor * d, DetectionKernels.MaxCap / 2),
        };
        ulong lg = Ptr(logits), rg = Ptr(regression), an = Ptr(anchors), sz = Ptr(_sizes!);
        DetectSlots slots;
        int groups;
        ulong grpSlot = 0, grpStart = 0, grpEnd = 0;
        if (Family is DetectorFamily.Ssd or DetectorFamily.NvidiaSsd)
        {
            if (k < 2) throw new ArgumentException($"gpu postprocess ({FamilyName}): logits need at least 2 classes (background + 1), got {k}");
            p.Segments = k - 1;
            p.Slots = checked(p.Segments * topk);
            slots = EnsureSlots(n, p, k);
            Ensure(ref _cand, (long)n * (k - 1) * a, DType.Int64);
            Ensure(ref _candCount, (long)n * (k - 1), DType.Int32);
            _kernels.SsdSoftmax(half, lg, Ptr(_cand!), Ptr(_candCount!), n, a, k, Options.ScoreThreshold, dle);
            _kernels.SsdSelect(half, Ptr(_cand!), Ptr(_candCount!), rg, an, sz, n, p, slots);
            groups = k - 1;
        }
        else
        {
            var levels = odtk ? OdtkLevels(grids, input, a, k) : Levels(anchorsPerLevel, a, k);
            p.Segments = levels.Count;
            p.Slots = checked(p.Segments * topk);
            if (p.Slots > DetectionKernels.MaxGroupSlots)
                throw new ArgumentException($"gpu postprocess ({FamilyName}): {levels.Count} levels x {topk} candidates = {p.Slots}, at most {DetectionKernels.MaxGroupSlots} on the GPU");
            slots = EnsureSlots(n, p, k);
            int chunks;
            unsafe { chunks = levels.Chunk0[levels.Count]; }
            Ensure(ref _chunkKeys, (long)n * chunks * topk, DType.Int64);
            Ensure(ref _chunkCounts, (long)n * chunks, DType.Int32);
            Ensure(ref _grpSlot, (long)n * p.Slots, DType.Int32);
            Ensure(ref _grpStart, (long)n * k, DType.Int32);
            Ensure(ref _grpEnd, (long)n * k, DType.Int32);
            _kernels.RetinaChunk(half, lg, levels, n, p, Ptr(_chunkKeys!), Ptr(_chunkCounts!));
            _kernels.RetinaMerge(half, Ptr(_chunkKeys!), Ptr(_chunkCounts!), levels, rg, an, sz, n, p, slots);
            grpSlot = Ptr(_grpSlot!);
            grpStart = Ptr(_grpStart!);
            grpEnd = Ptr(_grpEnd!);
            _kernels.RetinaGroup(n, p, slots, grpSlot, grpStart, grpEnd);
            groups = k;
        }
        // batched_nms's coordinate offsets are torchvision's; ODTK and DLE run NMS per class
        int offsetLimit = odtk || dle ? -1 : OffsetLimit;
        _kernels.ImageStats(n, p, slots, offsetLimit);
        _kernels.NmsClass(n, groups, d, p, slots, grpSlot, grpStart, grpEnd, offsetLimit);
        var result = new GpuDetections(n, d, Device);
        _kernels.FinalTopD(n, d, p, slots, Ptr(result.Counts), Ptr(result.Boxes), Ptr(result.Scores),
            Ptr(result.Labels), Ptr(result.Packed));
        return result;
    }

    /// <summary>Copies the detections to the host with one synchronisation; boxes in resized-image pixels.</summary>
    public static IReadOnlyList<DetectedObject>[] Download(GpuDetections detections)
    {
        ArgumentNullException.ThrowIfNull(detections);
        int[] packed = detections.Packed.ToArray<int>();
        int n = detections.BatchSize, d = detections.DetectionsPerImage;
        var result = new IReadOnlyList<DetectedObject>[n];
        var words = packed.AsSpan();
        for (int i = 0; i < n; i++)
        {
            int count = packed[i];
            var list = new List<DetectedObject>(count);
            for (int r = 0; r < count; r++)
            {
                long o = (long)i * d + r;
                int b = n + (int)o * 4;
                list.Add(new DetectedObject(BitConverter.Int32BitsToSingle(words[b]), BitConverter.Int32BitsToSingle(words[b + 1]),
                    BitConverter.Int32BitsToSingle(words[b + 2]), BitConverter.Int32BitsToSingle(words[b + 3]),
                    BitConverter.Int32BitsToSingle(words[n + n * d * 4 + (int)o]), words[n + n * d * 5 + (int)o]));
            }
            result[i] = list;
        }
        return result;
    }

    private static ulong Ptr(Tensor t) => (ulong)t.DataPointer;

    private (int N, int A, int K, bool Half) Check(Tensor logits, Tensor regression, Tensor anchors, ReadOnlySpan<ImageSize> sizes)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(regression);
        ArgumentNullException.ThrowIfNull(anchors);
        string fam = FamilyName;
        if (logits.Rank != 3 || regression.Rank != 3 || regression.Shape[2] != 4 || regression.Shape[0] != logits.Shape[0] || regression.Shape[1] != logits.Shape[1])
            throw new ArgumentException($"gpu postprocess ({fam}): logits [N, A, K] and regression [N, A, 4] expected, got {logits.Shape} and {regression.Shape}");
        int n = logits.Shape[0], a = logits.Shape[1], k = logits.Shape[2];
        if (anchors.Rank != 2 || anchors.Shape[0] != a || anchors.Shape[1] != 4 || anchors.DType != DType.Float32)
            throw new ArgumentException($"gpu postprocess ({fam}): anchors must be float32 [{a}, 4], got {anchors.DType} {anchors.Shape}");
        if (logits.DType != regression.DType || logits.DType is not (DType.Float32 or DType.Float16))
            throw new ArgumentException($"gpu postprocess ({fam}): logits and regression must both be float32 or both float16, got {logits.DType} and {regression.DType}");
        foreach (var t in (ReadOnlySpan<Tensor>)[logits, regression, anchors])
        {
            if (t.Device != Device) throw new ArgumentException($"gpu postprocess ({fam}): a tensor is on {t.Device}, this post-processor runs on {Device}");
            if (!t.IsContiguous()) throw new ArgumentException($"gpu postprocess ({fam}): tensors must be contiguous (shape {t.Shape})");
        }
        if (n == 0 || a == 0 || k == 0) throw new ArgumentException($"gpu postprocess ({fam}): empty logits {logits.Shape}");
        if ((long)a * k > int.MaxValue) throw new ArgumentException($"gpu postprocess ({fam}): {a} anchors x {k} classes exceeds 2^31 per image");
        if (sizes.Length != n) throw new ArgumentException($"gpu postprocess ({fam}): {n} images but {sizes.Length} resized sizes");
        foreach (var s in sizes)
            if (s.Height <= 0 || s.Width <= 0) throw new ArgumentException($"gpu postprocess ({fam}): resized size {s} must be positive");
        return (n, a, k, logits.DType == DType.Float16);
    }

    private string FamilyName => Family switch
    {
        DetectorFamily.Ssd => "ssd",
        DetectorFamily.RetinaNet => "retinanet",
        DetectorFamily.OdtkRetinaNet => "odtk",
        _ => "nvidia ssd",
    };

    /// <summary>ODTK's levels: anchors per level from the grids (A / sum of grid cells per location), strides as <see cref="OdtkAnchors.Stride"/>.</summary>
    private static unsafe DetectLevels OdtkLevels(ReadOnlySpan<ImageSize> grids, ImageSize input, int a, int k)
    {
        if (grids.Length == 0 || input.Height <= 0 || input.Width <= 0)
            throw new ArgumentException($"gpu postprocess (odtk): the feature grids and the padded input size are needed, got {grids.Length} grids and input {input}");
        if (grids.Length > DetectLevels.Max) throw new ArgumentException($"gpu postprocess (odtk): 1 to {DetectLevels.Max} levels, got {grids.Length}");
        long cells = 0;
        foreach (var g in grids) cells += (long)g.Height * g.Width;
        if (cells <= 0 || a % cells != 0)
            throw new ArgumentException($"gpu postprocess (odtk): {a} anchors are not a whole number per location of the grids' {cells} cells");
        int perLoc = (int)(a / cells);
        Span<int> counts = stackalloc int[grids.Length];
        for (int l = 0; l < grids.Length; l++) counts[l] = grids[l].Height * grids[l].Width * perLoc;
        var lv = Levels(counts, a, k);
        lv.Odtk = 1;
        lv.PerLocation = perLoc;
        for (int l = 0; l < grids.Length; l++)
        {
            int stride = OdtkAnchors.Stride(input, grids[l]);
            lv.GridH[l] = grids[l].Height;
            lv.GridW[l] = grids[l].Width;
            lv.MaxX[l] = grids[l].Width * stride - 1;
            lv.MaxY[l] = grids[l].Height * stride - 1;
        }
        return lv;
    }

    private static unsafe DetectLevels Levels(ReadOnlySpan<int> anchorsPerLevel, int a, int k)
    {
        if (anchorsPerLevel.Length == 0 || anchorsPerLevel.Length > DetectLevels.Max)
            throw new ArgumentException($"gpu postprocess (retinanet): 1 to {DetectLevels.Max} levels, got {anchorsPerLevel.Length}");
        var lv = new DetectLevels { Count = anchorsPerLevel.Length };
        long first = 0;
        int chunks = 0;
        for (int l = 0; l < anchorsPerLevel.Length; l++)
        {
            int c = anchorsPerLevel[l];
            if (c <= 0) throw new ArgumentException($"gpu postprocess (retinanet): level {l} has {c} anchors");
            lv.First[l] = (int)first;
            lv.Anchors[l] = c;
            lv.Chunk0[l] = chunks;
            chunks += (int)(((long)c * k + DetectionKernels.Chunk - 1) / DetectionKernels.Chunk);
            first += c;
        }
        lv.Chunk0[lv.Count] = chunks;
        if (first != a) throw new ArgumentException($"gpu postprocess (retinanet): anchors per level sum to {first}, logits have {a} anchors");
        return lv;
    }

    private DetectSlots EnsureSlots(int n, DetectParams p, int k)
    {
        long s = (long)n * p.Slots;
        Ensure(ref _box, s * 4, DType.Float32);
        Ensure(ref _score, s, DType.Float32);
        Ensure(ref _label, s, DType.Int32);
        Ensure(ref _kept, s, DType.UInt8);
        Ensure(ref _count, (long)n * p.Segments, DType.Int32);
        Ensure(ref _imgMax, n, DType.Float32);
        Ensure(ref _imgTotal, n, DType.Int32);
        Ensure(ref _imgBound, n, DType.Float32);
        Ensure(ref _imgKept, n, DType.Int32);
        _ = k;
        return new DetectSlots
        {
            Box = Ptr(_box!), Score = Ptr(_score!), Label = Ptr(_label!), Count = Ptr(_count!),
            Kept = Ptr(_kept!), ImageMax = Ptr(_imgMax!), ImageTotal = Ptr(_imgTotal!), ImageBound = Ptr(_imgBound!), ImageKept = Ptr(_imgKept!),
        };
    }

    /// <summary>Keeps a scratch tensor of at least <paramref name="elements"/> elements (grown by reallocation, never shrunk).</summary>
    private void Ensure(ref Tensor? t, long elements, DType dtype)
    {
        elements = Math.Max(elements, 1);
        if (t is not null && t.Numel >= elements) return;
        if (t is not null) { _scratch.Remove(t); t.Dispose(); }
        t = Tensor.Empty(new Shape(checked((int)elements)), dtype, Device);
        _scratch.Add(t);
    }

    /// <summary>
    /// Sets the images' resized sizes for the next runs without queuing the rest (CUDA graph replay: call before each
    /// launch; the device buffer only grows, so sizes for up to the largest batch seen are written in place at the address a graph reads).
    /// </summary>
    public void SetSizes(ReadOnlySpan<ImageSize> resizedSizes)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _backend.MakeCurrent();
        UploadSizes(resizedSizes);
    }

    private void UploadSizes(ReadOnlySpan<ImageSize> sizes)
    {
        int need = sizes.Length * 2;
        bool same = _sizes is not null && _sizesUsed == need;
        for (int i = 0; same && i < sizes.Length; i++) same = _sizesHost[2 * i] == sizes[i].Height && _sizesHost[2 * i + 1] == sizes[i].Width;
        if (same) return;
        if (_sizes is null || _sizesHost.Length < need)
        {
            // grows only: a smaller batch overwrites the front in place (stream-ordered), keeping the device address that
            // captured CUDA graphs read
            if (_sizes is not null) { _scratch.Remove(_sizes); _sizes.Dispose(); }
            _sizesHost = new int[need];
            _sizes = Tensor.Empty(new Shape(need), DType.Int32, Device);
            _scratch.Add(_sizes);
        }
        for (int i = 0; i < sizes.Length; i++) { _sizesHost[2 * i] = sizes[i].Height; _sizesHost[2 * i + 1] = sizes[i].Width; }
        _sizesUsed = need;
        _backend.Upload(MemoryMarshal.AsBytes(_sizesHost.AsSpan(0, need)), _sizes.Storage, _sizes.Offset * sizeof(int));
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var t in _scratch) t.Dispose();
        _scratch.Clear();
    }
}

/// <summary>
/// Fixed-size detections of a batch on the device: Counts [N] int32, Boxes [N, D, 4] float32 (x1, y1, x2, y2 in
/// resized-image pixels, clipped), Scores [N, D] float32, Labels [N, D] int32; rows at or past an image's count hold
/// a zero box, score 0 and label -1. Packed holds the same values in one int32 buffer for a single download.
/// </summary>
public sealed class GpuDetections : IDisposable
{
    internal GpuDetections(int n, int d, Device device)
    {
        BatchSize = n;
        DetectionsPerImage = d;
        Counts = Tensor.Empty(new Shape(n), DType.Int32, device);
        Boxes = Tensor.Empty(new Shape(n, d, 4), DType.Float32, device);
        Scores = Tensor.Empty(new Shape(n, d), DType.Float32, device);
        Labels = Tensor.Empty(new Shape(n, d), DType.Int32, device);
        Packed = Tensor.Empty(new Shape(checked(n * (1 + 6 * d))), DType.Int32, device);
    }

    public int BatchSize { get; }
    public int DetectionsPerImage { get; }
    public Tensor Counts { get; }
    public Tensor Boxes { get; }
    public Tensor Scores { get; }
    public Tensor Labels { get; }
    /// <summary>[counts N | boxes N*D*4 | scores N*D | labels N*D], floats as their bits.</summary>
    public Tensor Packed { get; }

    public void Dispose()
    {
        Counts.Dispose();
        Boxes.Dispose();
        Scores.Dispose();
        Labels.Dispose();
        Packed.Dispose();
    }
}
