using System.Collections.Concurrent;
using Osprey.Core;
using Osprey.Core.Backends;
using Osprey.Core.IO;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Cuda;
using Osprey.Detection.Boxes;
using Osprey.Detection.Gpu;
using Osprey.Detection.Models;
using Osprey.Vision.Codecs;
using Osprey.Vision.Imaging;
using Osprey.Vision.Transforms;

namespace Osprey.Detection;

/// <summary>Numeric precision of a detector's network.</summary>
public enum Precision
{
    /// <summary>float32 everywhere (exact fp32 on the GPU: no TF32).</summary>
    Fp32,
    /// <summary>float16 weights and activations (CUDA only), float32 accumulation; the SSD L2Norm and post-processing stay float32.</summary>
    Fp16,
}

/// <summary>Overrides of an architecture's defaults; null keeps the default.</summary>
public sealed record DetectorOptions
{
    /// <summary>Where the network runs: <see cref="Device.Cpu"/> or <c>Device.Cuda(i)</c> (pre-processing then runs there too, as one fused kernel).</summary>
    public Device Device { get; init; } = Device.Cpu;

    /// <summary>Activation layout of the network. Channels-last (NHWC) is the fast convolution path of both backends.</summary>
    public MemoryFormat Format { get; init; } = MemoryFormat.ChannelsLast;

    /// <summary>Network precision; <see cref="Precision.Fp16"/> needs a CUDA device.</summary>
    public Precision Precision { get; init; } = Precision.Fp32;

    /// <summary>
    /// On a CUDA device, decode + NMS run on the GPU (<see cref="GpuPostProcessor"/>: one download of the final
    /// detections per batch). False copies the head outputs to the host and uses the CPU post-processors (the
    /// reference path; slower: the heads are large). Ignored on the CPU.
    /// </summary>
    public bool GpuPostProcess { get; init; } = true;
    public ResizePolicy? Resize { get; init; }
    public PostProcessOptions? PostProcess { get; init; }
}

/// <summary>
/// A ready-to-run detector: decode, pre-process, network, anchors, decode + NMS, boxes in original image pixels.
/// <code>
/// using var detector = Detector.Load("retinanet_resnet50_fpn", "retinanet.pth");
/// foreach (var d in detector.Detect("dog.jpg")) Console.WriteLine($"{d.Label} {d.Score:F2} {d.X1},{d.Y1},{d.X2},{d.Y2}");
/// </code>
/// Not thread-safe: use one detector per thread.
/// </summary>
public sealed class Detector : IDisposable
{
    private readonly DetectionModel _model;
    private readonly Preprocessor _pre;
    private readonly GpuPreprocessor? _gpuPre;
    private readonly GpuPostProcessor? _gpuPost;
    private readonly Dictionary<(int H, int W), (Tensor Anchors, int[] Counts)> _deviceAnchors = [];
    private readonly ConcurrentBag<PostProcessorBase> _post = [];
    private readonly AnchorGenerator? _anchors;
    private readonly DefaultBoxGenerator? _defaultBoxes;
    private readonly OdtkAnchors? _odtkAnchors;
    private readonly float[]? _nvDefaultBoxes;

    private Detector(Architecture arch, DetectionModel model, DetectorOptions options)
    {
        Architecture = arch;
        _model = model;
        Precision = options.Precision;
        var resize = options.Resize ?? arch.Resize;
        _pre = new Preprocessor(resize, arch.Normalization, options.Device);
        if (options.Device.Type == DeviceType.Cuda)
            _gpuPre = new GpuPreprocessor(resize, arch.Normalization, options.Device, model.DType, options.Format);
        var post = options.PostProcess ?? arch.PostProcess;
        post.Validate();
        switch (arch.Family)
        {
            case DetectorFamily.RetinaNet: _anchors = arch.Anchors(); break;
            case DetectorFamily.Ssd: _defaultBoxes = DefaultBoxGenerator.Ssd300(); break;
            case DetectorFamily.OdtkRetinaNet: _odtkAnchors = OdtkAnchors.Default(); break;
            default: _nvDefaultBoxes = NvidiaDefaultBoxes.Generate(); break;
        }
        PostProcess = post;
        if (_gpuPre is not null && options.GpuPostProcess)
            _gpuPost = new GpuPostProcessor(arch.Family, post, arch.Family switch
            {
                DetectorFamily.RetinaNet => BoxCoder.RetinaNet,
                DetectorFamily.Ssd => BoxCoder.Ssd,
                DetectorFamily.OdtkRetinaNet => BoxCoder.Odtk,
                _ => BoxCoder.NvidiaSsd,
            }, options.Device);
    }

    public Architecture Architecture { get; }
    public PostProcessOptions PostProcess { get; }
    public ResizePolicy Resize => _pre.Resize;
    public Device Device => _pre.Device;
    public Precision Precision { get; }

    /// <summary>Whether decode + NMS run on the GPU (see <see cref="DetectorOptions.GpuPostProcess"/>).</summary>
    public bool PostProcessesOnGpu => _gpuPost is not null;

    /// <summary>Loads a safetensors file or PyTorch checkpoint for a named architecture.</summary>
    public static Detector Load(string architecture, string weightsPath, DetectorOptions? options = null)
    {
        var arch = Architectures.Get(architecture);
        CheckOptions(options ?? new DetectorOptions());
        using var weights = WeightFile.Load(weightsPath);
        return Create(arch.Name, weights, weightsPath, options);
    }

    /// <summary>Builds a detector from weights already in memory (copied; the caller keeps ownership of <paramref name="weights"/>).</summary>
    public static Detector Create(string architecture, StateDict weights, string source, DetectorOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(weights);
        var arch = Architectures.Get(architecture);
        options ??= new DetectorOptions();
        CheckOptions(options);
        // a class count read from the weights (RetinaNet checkpoints trained on other data); else the architecture's own
        var model = arch.ClassesIn(weights) is int classes ? arch.CreateFor(classes) : arch.Create();
        try
        {
            model.Load(weights, source, options.Device, options.Format, options.Precision == Precision.Fp16 ? DType.Float16 : DType.Float32);
            return new Detector(arch, model, options);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Device and precision checks before any weight is read: fp16 needs CUDA; a CUDA device must open.</summary>
    private static void CheckOptions(DetectorOptions options)
    {
        if (options.Precision == Precision.Fp16 && options.Device.Type != DeviceType.Cuda)
            throw new OspreyException($"precision fp16 needs a CUDA device (got {options.Device}); the CPU backend runs fp32");
        if (options.Device.Type == DeviceType.Cuda)
        {
            if (!BackendRegistry.HasProvider(DeviceType.Cuda)) CudaBackend.Register();
            if (!CudaBackend.IsAvailable(out string why)) throw new OspreyException($"device {options.Device}: no usable CUDA GPU ({why})");
            _ = BackendRegistry.Get(options.Device);   // opens it: a bad index fails here, naming the device count
        }
        else if (options.Device.Type != DeviceType.Cpu) throw new OspreyException($"device {options.Device}: detection runs on cpu or cuda devices");
    }

    public IReadOnlyList<DetectedObject> Detect(string imagePath) => Detect(ImageDecoder.Decode(imagePath));

    public IReadOnlyList<DetectedObject> Detect(RgbImage image) => Detect([image])[0];

    /// <summary>Detects objects in a batch of images (one forward pass); boxes are in each image's own pixels.</summary>
    public IReadOnlyList<DetectedObject>[] Detect(IReadOnlyList<RgbImage> images)
    {
        using var batch = Preprocess(images);
        using var heads = Forward(batch);
        return PostProcessBatch(heads, batch);
    }

    /// <summary>
    /// The network's input for a batch: on a CUDA device one upload of the decoded pixels and one fused kernel
    /// (<see cref="GpuPreprocessor"/>), in the network's layout and precision; on the CPU <see cref="Preprocessor"/>.
    /// </summary>
    public ImageBatch Preprocess(IReadOnlyList<RgbImage> images) => _gpuPre is not null ? _gpuPre.Batch(images) : _pre.Batch(images);

    /// <summary>
    /// Benchmarks: <see cref="Detect(IReadOnlyList{RgbImage})"/> starting from the decoded batch the previous call
    /// uploaded (still on the GPU), so the host-to-device copy is left out.
    /// </summary>
    internal IReadOnlyList<DetectedObject>[] DetectResident(IReadOnlyList<RgbImage> images)
    {
        using var batch = PreprocessResident(images);
        using var heads = Forward(batch);
        return PostProcessBatch(heads, batch);
    }

    /// <summary>Benchmarks: <see cref="Preprocess"/> from the pixels the previous call left on the GPU.</summary>
    internal ImageBatch PreprocessResident(IReadOnlyList<RgbImage> images) =>
        _gpuPre is not null ? _gpuPre.Batch(images, resident: true) : throw new InvalidOperationException("resident pre-processing needs a CUDA detector");

    /// <summary>The network on a pre-processed batch; the caller disposes the head outputs.</summary>
    public HeadOutputs Forward(ImageBatch batch, bool keepFeatures = false)
    {
        ArgumentNullException.ThrowIfNull(batch);
        using var input = Op.Contiguous(batch.Images, _model.Format);
        return _model.Forward(input, keepFeatures);
    }

    /// <summary>Runs the network and returns its raw outputs (for tests and tools); the caller disposes them.</summary>
    public (ImageBatch Batch, HeadOutputs Heads) RunNetwork(IReadOnlyList<RgbImage> images, bool keepFeatures)
    {
        var batch = Preprocess(images);
        try
        {
            return (batch, Forward(batch, keepFeatures));
        }
        catch
        {
            batch.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Anchors or default boxes, decoding, NMS and rescaling to the original sizes: on the GPU for a CUDA detector
    /// (one synchronisation, when the final detections are downloaded), else on the host.
    /// </summary>
    public IReadOnlyList<DetectedObject>[] PostProcessBatch(HeadOutputs heads, ImageBatch batch)
    {
        ArgumentNullException.ThrowIfNull(heads);
        ArgumentNullException.ThrowIfNull(batch);
        return _gpuPost is not null ? PostProcessOnGpu(heads, batch) : PostProcessOnHost(heads, batch);
    }

    private (float[] Anchors, int[] Counts) HostAnchors(ImageSize input, ImageSize[] grids)
    {
        float[] anchors = _anchors is not null ? _anchors.Generate(input, grids)
            : _defaultBoxes is not null ? _defaultBoxes.Generate(input, grids)
            : _odtkAnchors is not null ? _odtkAnchors.Generate(input, grids)
            : _nvDefaultBoxes!;
        if (_nvDefaultBoxes is not null) NvidiaDefaultBoxes.CheckGrids(grids);
        var counts = new int[grids.Length];
        for (int l = 0; l < counts.Length; l++)
            counts[l] = grids[l].Height * grids[l].Width * (_anchors?.AnchorsPerLocation(l) ?? _defaultBoxes?.BoxesPerLocation(l) ?? 0);
        return (anchors, counts);
    }

    private IReadOnlyList<DetectedObject>[] PostProcessOnGpu(HeadOutputs heads, ImageBatch batch)
    {
        var input = new ImageSize(batch.Images.Shape[2], batch.Images.Shape[3]);
        if (!_deviceAnchors.TryGetValue((input.Height, input.Width), out var dev))
        {
            var (host, c) = HostAnchors(input, heads.Grids);
            dev = (Tensor.FromSpan<float>(host, new Shape(host.Length / 4, 4), Device), c);
            _deviceAnchors[(input.Height, input.Width)] = dev;   // grids follow from the input size, so the key is enough
        }
        var sizes = new ImageSize[batch.Resized.Length];
        for (int i = 0; i < sizes.Length; i++) sizes[i] = new ImageSize(batch.Resized[i].Height, batch.Resized[i].Width);
        IReadOnlyList<DetectedObject>[] found;
        using (var d = _gpuPost!.Run(heads, dev.Anchors, dev.Counts, sizes, input)) found = GpuPostProcessor.Download(d);
        for (int i = 0; i < found.Length; i++)
        {
            var list = (List<DetectedObject>)found[i];
            var original = new ImageSize(batch.Original[i].Height, batch.Original[i].Width);
            for (int j = 0; j < list.Count; j++) list[j] = ToOriginal(list[j], sizes[i], original);
        }
        return found;
    }

    private IReadOnlyList<DetectedObject>[] PostProcessOnHost(HeadOutputs heads, ImageBatch batch)
    {
        var input = new ImageSize(batch.Images.Shape[2], batch.Images.Shape[3]);
        var (anchors, counts) = HostAnchors(input, heads.Grids);
        var logits = HostFloats(heads.ClassLogits);
        var regs = HostFloats(heads.BoxRegression);
        int n = batch.Images.Shape[0], a = heads.ClassLogits.Shape[1], k = heads.ClassLogits.Shape[2];
        var results = new IReadOnlyList<DetectedObject>[n];
        // images are independent: one post-processor (they keep reusable buffers) per worker thread
        Parallel.For(0, n, new ParallelOptions { MaxDegreeOfParallelism = Math.Min(n, Environment.ProcessorCount) }, RentPostProcessor,
            (i, _, proc) =>
            {
                var found = new List<DetectedObject>();
                var size = new ImageSize(batch.Resized[i].Height, batch.Resized[i].Width);
                var original = new ImageSize(batch.Original[i].Height, batch.Original[i].Width);
                var l = logits.AsSpan(i * a * k, a * k);
                var r = regs.AsSpan(i * a * 4, a * 4);
                switch (proc)
                {
                    case RetinaNetPostProcessor retina: retina.Run(l, r, anchors, counts, k, size, found); break;
                    case SsdPostProcessor ssd: ssd.Run(l, r, anchors, k, size, found); break;
                    case OdtkPostProcessor odtk: odtk.Run(l, r, anchors, heads.Grids, _odtkAnchors!.AnchorsPerLocation, k, input, found); break;
                    default: ((NvidiaSsdPostProcessor)proc).Run(l, r, anchors, k, found); break;
                }
                for (int d = 0; d < found.Count; d++) found[d] = ToOriginal(found[d], size, original);
                results[i] = found;
                return proc;
            },
            _post.Add);
        return results;
    }

    private PostProcessorBase RentPostProcessor() =>
        _post.TryTake(out var p) ? p : Architecture.Family switch
        {
            DetectorFamily.RetinaNet => new RetinaNetPostProcessor(PostProcess),
            DetectorFamily.Ssd => new SsdPostProcessor(PostProcess),
            DetectorFamily.OdtkRetinaNet => new OdtkPostProcessor(PostProcess),
            _ => new NvidiaSsdPostProcessor(PostProcess),
        };

    /// <summary>A detection of the family's post-processor (GPU or host) in original image pixels, with a COCO label.</summary>
    private DetectedObject ToOriginal(DetectedObject found, ImageSize resized, ImageSize original)
    {
        var det = Architecture.Family switch
        {
            DetectorFamily.OdtkRetinaNet => OdtkToOriginal(found, OdtkRatios(resized, original)),
            DetectorFamily.NvidiaSsd => RelativeToOriginal(found, original),
            _ => BoxOps.Rescale(found, resized, original),
        };
        var categories = Architecture.CategoryIds;
        return categories is null ? det : det with { Label = categories[det.Label] };
    }

    /// <summary>
    /// ODTK's resize ratio of an image (odtk/data.py), as the float32 its infer divides boxes by; with a resize policy
    /// other than ODTK's (an option), the per-axis ratio of the resized to the original size.
    /// </summary>
    private (float X, float Y) OdtkRatios(ImageSize resized, ImageSize original)
    {
        var p = _pre.Resize;
        if (p.Kind != ResizeKind.Odtk) return ((float)resized.Width / original.Width, (float)resized.Height / original.Height);
        double ratio = (double)p.MinSize / Math.Min(original.Height, original.Width);
        if (ratio * Math.Max(original.Height, original.Width) > p.MaxSize) ratio = (double)p.MaxSize / Math.Max(original.Height, original.Width);
        return ((float)ratio, (float)ratio);
    }

    /// <summary>odtk/infer.py: boxes / ratio; its JSON width is x2 - x1 + 1, so the exclusive corner is x2 / ratio + 1.</summary>
    private static DetectedObject OdtkToOriginal(DetectedObject d, (float X, float Y) r) =>
        d with { X1 = d.X1 / r.X, Y1 = d.Y1 / r.Y, X2 = d.X2 / r.X + 1f, Y2 = d.Y2 / r.Y + 1f };

    /// <summary>ssd/evaluate.py: relative corners times the original width and height.</summary>
    private static DetectedObject RelativeToOriginal(DetectedObject d, ImageSize original) =>
        d with { X1 = d.X1 * original.Width, Y1 = d.Y1 * original.Height, X2 = d.X2 * original.Width, Y2 = d.Y2 * original.Height };

    /// <summary>A head output as float32 host values (float16 heads are downloaded as float16, half the bytes, and widened here).</summary>
    private static float[] HostFloats(Tensor t)
    {
        if (t.DType == DType.Float32) return t.ToArray<float>();
        if (t.DType != DType.Float16)
        {
            using var f = Op.Cast(t, DType.Float32);
            return f.ToArray<float>();
        }
        var h = t.ToArray<Half>();
        var r = new float[h.Length];
        const int Chunk = 1 << 16;
        Parallel.For(0, (h.Length + Chunk - 1) / Chunk, c =>
        {
            int lo = c * Chunk, hi = Math.Min(h.Length, lo + Chunk);
            for (int i = lo; i < hi; i++) r[i] = (float)h[i];
        });
        return r;
    }

    public void Dispose()
    {
        foreach (var (a, _) in _deviceAnchors.Values) a.Dispose();
        _deviceAnchors.Clear();
        _gpuPost?.Dispose();
        _gpuPre?.Dispose();
        _model.Dispose();
    }
}
