using Osprey.Core.Backends;
using Osprey.Core.Cpu;
using Osprey.Core.Tensors;
using Osprey.Cuda;
using Osprey.Cuda.Detection;
using Osprey.Vision.Imaging;
using Osprey.Vision.Transforms;

namespace Osprey.Detection.Gpu;

/// <summary>
/// The GPU counterpart of <see cref="Preprocessor.Batch"/>: the same sizes (<see cref="ResizePolicy"/>) and
/// values (normalise, then bilinear align_corners=False, zero padding to the divisor), computed by one fused
/// kernel over the whole batch after one host-to-device copy of the decoded pixels (<see cref="BatchPreprocessor"/>).
/// The batch tensor comes out in the network's layout and precision (NCHW or channels-last, float32 or float16).
/// Not thread-safe.
/// </summary>
public sealed unsafe class GpuPreprocessor : IDisposable
{
    /// <summary>Bytes of pixels per piece of the parallel staging copy, and the batch size below which one thread copies.</summary>
    private const long PieceBytes = 1 << 20, ParallelBytes = 4L << 20;

    private readonly BatchPreprocessor _kernel;
    private readonly PreprocessImage[] _descriptors = new PreprocessImage[4096];
    private readonly Action<int> _copyPiece;
    private IReadOnlyList<RgbImage>? _copyImages;
    private byte* _copyTo;
    private long _copyBytes;

    public GpuPreprocessor(ResizePolicy resize, Normalization normalization, Device device, DType dtype, MemoryFormat format)
    {
        ArgumentNullException.ThrowIfNull(resize);
        ArgumentNullException.ThrowIfNull(normalization);
        resize.Validate();
        normalization.Validate();
        if (device.Type != DeviceType.Cuda) throw new ArgumentException($"GPU preprocessing needs a CUDA device, got {device}");
        if (dtype is not (DType.Float32 or DType.Float16)) throw new ArgumentException($"GPU preprocessing: float32 or float16 output, got {dtype}");
        Resize = resize;
        Normalization = normalization;
        Device = device;
        DType = dtype;
        Format = format;
        _kernel = new BatchPreprocessor((CudaBackend)BackendRegistry.Get(device));
        _copyPiece = CopyPiece;
    }

    public ResizePolicy Resize { get; }
    public Normalization Normalization { get; }
    public Device Device { get; }
    public DType DType { get; }
    public MemoryFormat Format { get; }

    public ImageBatch Batch(IReadOnlyList<RgbImage> images) => Batch(images, resident: false);

    /// <summary>With <paramref name="resident"/>, the pixels of the previous call (the same images) are reused on the device: no copy (benchmarks).</summary>
    internal ImageBatch Batch(IReadOnlyList<RgbImage> images, bool resident)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Count == 0) throw new ArgumentException("preprocess: no images");
        if (images.Count > _descriptors.Length) throw new ArgumentException($"preprocess: {images.Count} images in one batch (at most {_descriptors.Length})");
        var sizes = new (int, int)[images.Count];
        var original = new (int, int)[images.Count];
        long bytes = 0;
        int maxH = 0, maxW = 0;
        for (int i = 0; i < images.Count; i++)
        {
            var img = images[i] ?? throw new ArgumentException($"preprocess: image {i} is null");
            original[i] = (img.Height, img.Width);
            var (h, w) = Resize.Resized(img.Height, img.Width);
            sizes[i] = (h, w);
            _descriptors[i] = new PreprocessImage(bytes, img.Height, img.Width, h, w);
            bytes += img.Pixels.Length;
            maxH = Math.Max(maxH, h);
            maxW = Math.Max(maxW, w);
        }
        if (!resident) StageAll(images, bytes);
        var batch = Tensor.Empty(new Shape(images.Count, 3, Resize.Padded(maxH), Resize.Padded(maxW)), DType, Device, Format);
        try
        {
            if (resident) _kernel.RunResident(bytes, _descriptors.AsSpan(0, images.Count), batch, Normalization.Mean, Normalization.Std);
            else _kernel.Run(bytes, _descriptors.AsSpan(0, images.Count), batch, Normalization.Mean, Normalization.Std);
        }
        catch
        {
            batch.Dispose();
            throw;
        }
        return new ImageBatch(batch, sizes, original);
    }

    /// <summary>
    /// Copies the decoded pixels into the page-locked staging buffer, packed in descriptor order. Large batches are
    /// copied in 1 MiB pieces by all cores (one thread copies about 5 to 10 GB/s into pinned memory: 59 MB per batch
    /// of 64 640x480 images would otherwise take longer than the network on the GPU).
    /// </summary>
    private void StageAll(IReadOnlyList<RgbImage> images, long bytes)
    {
        var staged = _kernel.Stage(bytes);
        if (bytes < ParallelBytes || Environment.ProcessorCount == 1)
        {
            for (int i = 0; i < images.Count; i++)
                images[i].Pixels.CopyTo(staged.Slice((int)_descriptors[i].Offset, images[i].Pixels.Length));
            return;
        }
        fixed (byte* to = staged)
        {
            _copyImages = images;
            _copyTo = to;
            _copyBytes = bytes;
            try
            {
                Parallel2.ForEach((int)((bytes + PieceBytes - 1) / PieceBytes), _copyPiece);
            }
            finally
            {
                _copyImages = null;
                _copyTo = null;
            }
        }
    }

    /// <summary>Piece <paramref name="piece"/> of the packed staging bytes: the parts of the images it overlaps.</summary>
    private void CopyPiece(int piece)
    {
        var images = _copyImages!;
        long lo = piece * PieceBytes, hi = Math.Min(lo + PieceBytes, _copyBytes);
        // the last image starting at or before lo (offsets ascend)
        int a = 0, b = images.Count - 1;
        while (a < b)
        {
            int m = (a + b + 1) / 2;
            if (_descriptors[m].Offset <= lo) a = m;
            else b = m - 1;
        }
        for (int i = a; i < images.Count && _descriptors[i].Offset < hi; i++)
        {
            var px = images[i].Pixels;
            long start = _descriptors[i].Offset;
            long from = Math.Max(lo, start), to = Math.Min(hi, start + px.Length);
            if (to <= from) continue;
            px.AsSpan((int)(from - start), (int)(to - from)).CopyTo(new Span<byte>(_copyTo + from, (int)(to - from)));
        }
    }

    public void Dispose() => _kernel.Dispose();
}
