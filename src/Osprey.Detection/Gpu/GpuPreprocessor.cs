using Osprey.Core.Backends;
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
public sealed class GpuPreprocessor : IDisposable
{
    private readonly BatchPreprocessor _kernel;
    private readonly PreprocessImage[] _descriptors = new PreprocessImage[4096];

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
        if (!resident)
        {
            var staged = _kernel.Stage(bytes);
            for (int i = 0; i < images.Count; i++)
                images[i].Pixels.CopyTo(staged.Slice((int)_descriptors[i].Offset, images[i].Pixels.Length));
        }
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

    public void Dispose() => _kernel.Dispose();
}
