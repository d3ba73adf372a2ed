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
    private readonly OdtkPostProcessor? _odtk;
    private readonly OdtkAnchors? _odtkAnchors;
    private readonly NvidiaSsdPostProcessor? _nvSsd;
    private readonly float[]? _nvDefaultBoxes;

    private Detector(Architecture arch, DetectionModel model, DetectorOptions options)
    {
        Architecture = arch;
        _model = model;
        _pre = new Preprocessor(options.Resize ?? arch.Resize, arch.Normalization, options.Device);
        var post = options.PostProcess ?? arch.PostProcess;
        switch (arch.Family)
        {
            case DetectorFamily.RetinaNet:
                _retina = new RetinaNetPostProcessor(post);
                _anchors = AnchorGenerator.RetinaNet();
                break;
            case DetectorFamily.Ssd:
                _ssd = new SsdPostProcessor(post);
                _defaultBoxes = DefaultBoxGenerator.Ssd300();
                break;
            case DetectorFamily.OdtkRetinaNet:
                _odtk = new OdtkPostProcessor(post);
                _odtkAnchors = OdtkAnchors.Default();
                break;
            default:
                _nvSsd = new NvidiaSsdPostProcessor(post);
                _nvDefaultBoxes = NvidiaDefaultBoxes.Generate();
                break;
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

    /// <summary>
    /// Anchors or default boxes, decoding, NMS and rescaling to the original sizes, each family as its reference does it;
    /// labels become COCO category ids where the architecture numbers its classes otherwise.
    /// </summary>
    public IReadOnlyList<DetectedObject>[] PostProcessBatch(HeadOutputs heads, ImageBatch batch)
    {
        ArgumentNullException.ThrowIfNull(heads);
        ArgumentNullException.ThrowIfNull(batch);
        var input = new ImageSize(batch.Images.Shape[2], batch.Images.Shape[3]);
        float[] anchors = _anchors is not null ? _anchors.Generate(input, heads.Grids)
            : _defaultBoxes is not null ? _defaultBoxes.Generate(input, heads.Grids)
            : _odtkAnchors is not null ? _odtkAnchors.Generate(input, heads.Grids)
            : _nvDefaultBoxes!;
        if (_nvSsd is not null) NvidiaDefaultBoxes.CheckGrids(heads.Grids);
        var counts = new int[heads.Grids.Length];
        for (int l = 0; l < counts.Length; l++)
            counts[l] = heads.Grids[l].Height * heads.Grids[l].Width * (_anchors?.AnchorsPerLocation(l) ?? _defaultBoxes?.BoxesPerLocation(l) ?? 0);
        var logits = heads.ClassLogits.ToArray<float>();
        var regs = heads.BoxRegression.ToArray<float>();
        int n = batch.Images.Shape[0], a = heads.ClassLogits.Shape[1], k = heads.ClassLogits.Shape[2];
        var categories = Architecture.CategoryIds;
        var results = new IReadOnlyList<DetectedObject>[n];
        for (int i = 0; i < n; i++)
        {
            var found = new List<DetectedObject>();
            var size = new ImageSize(batch.Resized[i].Height, batch.Resized[i].Width);
            var original = new ImageSize(batch.Original[i].Height, batch.Original[i].Width);
            var l = logits.AsSpan(i * a * k, a * k);
            var r = regs.AsSpan(i * a * 4, a * 4);
            if (_retina is not null) _retina.Run(l, r, anchors, counts, k, size, found);
            else if (_ssd is not null) _ssd.Run(l, r, anchors, k, size, found);
            else if (_odtk is not null) _odtk.Run(l, r, anchors, heads.Grids, _odtkAnchors!.AnchorsPerLocation, k, input, found);
            else _nvSsd!.Run(l, r, anchors, k, found);
            for (int d = 0; d < found.Count; d++)
            {
                var det = _odtk is not null ? OdtkToOriginal(found[d], OdtkRatios(size, original))
                    : _nvSsd is not null ? RelativeToOriginal(found[d], original)
                    : BoxOps.Rescale(found[d], size, original);
                found[d] = categories is null ? det : det with { Label = categories[det.Label] };
            }
            results[i] = found;
        }
        return results;
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

    public void Dispose() => _model.Dispose();
}
