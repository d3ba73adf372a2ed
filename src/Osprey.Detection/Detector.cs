using Osprey.Core;
using Osprey.Core.IO;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Detection.Boxes;
using Osprey.Detection.Models;
using Osprey.Vision.Codecs;
using Osprey.Vision.Imaging;
using Osprey.Vision.Transforms;

namespace Osprey.Detection;

/// <summary>Overrides of an architecture's defaults; null keeps the default.</summary>
public sealed record DetectorOptions
{
    public Device Device { get; init; } = Device.Cpu;

    /// <summary>Activation layout of the network. Channels-last (NHWC) is the CPU backend's fast convolution path.</summary>
    public MemoryFormat Format { get; init; } = MemoryFormat.ChannelsLast;
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
    private readonly RetinaNetPostProcessor? _retina;
    private readonly SsdPostProcessor? _ssd;
    private readonly AnchorGenerator? _anchors;
    private readonly DefaultBoxGenerator? _defaultBoxes;

    private Detector(Architecture arch, DetectionModel model, DetectorOptions options)
    {
        Architecture = arch;
        _model = model;
        _pre = new Preprocessor(options.Resize ?? arch.Resize, arch.Normalization, options.Device);
        var post = options.PostProcess ?? arch.PostProcess;
        if (arch.Family == DetectorFamily.RetinaNet)
        {
            _retina = new RetinaNetPostProcessor(post);
            _anchors = AnchorGenerator.RetinaNet();
        }
        else
        {
            _ssd = new SsdPostProcessor(post);
            _defaultBoxes = DefaultBoxGenerator.Ssd300();
        }
        PostProcess = post;
    }

    public Architecture Architecture { get; }
    public PostProcessOptions PostProcess { get; }
    public ResizePolicy Resize => _pre.Resize;
    public Device Device => _pre.Device;

    /// <summary>Loads a safetensors file or PyTorch checkpoint for a named architecture.</summary>
    public static Detector Load(string architecture, string weightsPath, DetectorOptions? options = null)
    {
        var arch = Architectures.Get(architecture);
        CheckDevice(options);
        using var weights = WeightFile.Load(weightsPath);
        return Create(arch.Name, weights, weightsPath, options);
    }

    /// <summary>Builds a detector from weights already in memory (copied; the caller keeps ownership of <paramref name="weights"/>).</summary>
    public static Detector Create(string architecture, StateDict weights, string source, DetectorOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(weights);
        var arch = Architectures.Get(architecture);
        options ??= new DetectorOptions();
        CheckDevice(options);
        var model = arch.Create();
        try
        {
            model.Load(weights, source, options.Device, options.Format);
            return new Detector(arch, model, options);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    private static void CheckDevice(DetectorOptions? options)
    {
        if (options is not null && options.Device.Type != DeviceType.Cpu)
            throw new OspreyException($"device {options.Device}: GPU detection is not yet available in this build (only --device cpu)");
    }

    public IReadOnlyList<DetectedObject> Detect(string imagePath) => Detect(ImageDecoder.Decode(imagePath));

    public IReadOnlyList<DetectedObject> Detect(RgbImage image) => Detect([image])[0];

    /// <summary>Detects objects in a batch of images (one forward pass); boxes are in each image's own pixels.</summary>
    public IReadOnlyList<DetectedObject>[] Detect(IReadOnlyList<RgbImage> images)
    {
        using var batch = _pre.Batch(images);
        using var input = Op.Contiguous(batch.Images, _model.Format);
        using var heads = _model.Forward(input);
        return PostProcessBatch(heads, batch);
    }

    /// <summary>Runs the network and returns its raw outputs (for tests and tools); the caller disposes them.</summary>
    public (ImageBatch Batch, HeadOutputs Heads) RunNetwork(IReadOnlyList<RgbImage> images, bool keepFeatures)
    {
        var batch = _pre.Batch(images);
        try
        {
            using var input = Op.Contiguous(batch.Images, _model.Format);
            return (batch, _model.Forward(input, keepFeatures));
        }
        catch
        {
            batch.Dispose();
            throw;
        }
    }

    /// <summary>Anchors or default boxes, decoding, NMS and rescaling to the original sizes.</summary>
    public IReadOnlyList<DetectedObject>[] PostProcessBatch(HeadOutputs heads, ImageBatch batch)
    {
        ArgumentNullException.ThrowIfNull(heads);
        ArgumentNullException.ThrowIfNull(batch);
        var input = new ImageSize(batch.Images.Shape[2], batch.Images.Shape[3]);
        float[] anchors = _anchors is not null ? _anchors.Generate(input, heads.Grids) : _defaultBoxes!.Generate(input, heads.Grids);
        var counts = new int[heads.Grids.Length];
        for (int l = 0; l < counts.Length; l++)
            counts[l] = heads.Grids[l].Height * heads.Grids[l].Width * (_anchors?.AnchorsPerLocation(l) ?? _defaultBoxes!.BoxesPerLocation(l));
        var logits = heads.ClassLogits.ToArray<float>();
        var regs = heads.BoxRegression.ToArray<float>();
        int n = batch.Images.Shape[0], a = heads.ClassLogits.Shape[1], k = heads.ClassLogits.Shape[2];
        var results = new IReadOnlyList<DetectedObject>[n];
        for (int i = 0; i < n; i++)
        {
            var found = new List<DetectedObject>();
            var size = new ImageSize(batch.Resized[i].Height, batch.Resized[i].Width);
            var l = logits.AsSpan(i * a * k, a * k);
            var r = regs.AsSpan(i * a * 4, a * 4);
            if (_retina is not null) _retina.Run(l, r, anchors, counts, k, size, found);
            else _ssd!.Run(l, r, anchors, k, size, found);
            var original = new ImageSize(batch.Original[i].Height, batch.Original[i].Width);
            for (int d = 0; d < found.Count; d++) found[d] = BoxOps.Rescale(found[d], size, original);
            results[i] = found;
        }
        return results;
    }

    public void Dispose() => _model.Dispose();
}
