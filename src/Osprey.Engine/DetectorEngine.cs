using System.Globalization;
using Osprey.Core.IO;
using Osprey.Core.Tensors;
using Osprey.Detection.Boxes;
using Osprey.Detection.Models;
using Osprey.Engine.Graph;
using Osprey.Engine.Serialization;
using Osprey.Engine.Tracing;
using Osprey.Vision.Transforms;

namespace Osprey.Engine;

/// <summary>What `osprey export` builds: architecture, fixed input size, maximum batch, precision, post-processing.</summary>
public sealed record DetectorEngineSpec(string Architecture, int Batch, int Height, int Width, DType Precision, PostProcessOptions PostProcess)
{
    public void Validate()
    {
        var arch = Architectures.Get(Architecture);
        if (Batch < 1 || Batch > 4096) throw new ArgumentException($"engine: batch {Batch} must be in [1, 4096]");
        if (Height < 32 || Width < 32 || Height > 4096 || Width > 4096)
            throw new ArgumentException($"engine: input size {Height}x{Width} must be within [32, 4096] on each side");
        if (arch.Family == DetectorFamily.RetinaNet && (Height % 32 != 0 || Width % 32 != 0))
            throw new ArgumentException($"engine: {arch.Name} needs an input size divisible by 32 (FPN strides), got {Height}x{Width}");
        if (Precision is not (DType.Float32 or DType.Float16 or DType.BFloat16))
            throw new ArgumentException($"engine: precision {Precision} (expected float32, float16 or bfloat16)");
        ArgumentNullException.ThrowIfNull(PostProcess);
        PostProcess.Validate();
    }

    /// <summary>
    /// How images are resized to fit the fixed input: SSD stretches to it (its own policy); RetinaNet keeps the aspect ratio
    /// with the longer side at most min(H, W) (its min = max size), and the rest of the input is zero padding.
    /// </summary>
    public ResizePolicy Resize
    {
        get
        {
            var arch = Architectures.Get(Architecture);
            return arch.Resize.Kind == ResizeKind.Fixed
                ? new ResizePolicy(ResizeKind.Fixed, Height, Width, 1)
                : new ResizePolicy(arch.Resize.Kind, Math.Min(Height, Width), Math.Min(Height, Width), 1);
        }
    }
}

/// <summary>Building detector engines (trace, passes) and the metadata that carries their spec in the engine file.</summary>
public static class DetectorEngines
{
    private const string KeyBatch = "batch", KeyHeight = "input_height", KeyWidth = "input_width", KeyPrecision = "precision",
        KeyScore = "score_threshold", KeyCandidates = "candidates_per_level", KeyNms = "nms_threshold", KeyDetections = "detections_per_image";

    /// <summary>
    /// The multiple 16-bit engines pad their image channels to by default: 0, none yet. 4 is what cuDNN runs fastest
    /// (<see cref="FastestInputChannelMultiple"/>) but its engine-level GPU run is still to do (docs/engine.md, session 4).
    /// float32 engines are never padded by default.
    /// </summary>
    public const int DefaultInputChannelMultiple = 0;

    /// <summary>
    /// The input channel multiple cuDNN 9.19 runs fastest, measured through torch on an H200 (fp16 NHWC): SSD300's 3x3 3->64
    /// at 64x300x300 takes 0.723 ms with 3 channels, 0.558 with 4, 0.727 with 8; RetinaNet's 7x7 s2 3->64 at 16x800x800 0.447,
    /// 0.323 and 1.003 ms. In the engine, padding to 8 measured 0.787 ms for SSD300's first convolution (0.801 unpadded).
    /// </summary>
    public const int FastestInputChannelMultiple = 4;

    /// <summary>
    /// Detector build options: the standard ones, except that float16 engines keep float16 heads (the GPU decode reads them;
    /// the head concat writes half the bytes). bfloat16 engines (same rule: bfloat16 heads) run on the CPU only, for accuracy
    /// comparisons (<see cref="Runtime.EngineDetector"/>); `osprey export` builds fp32 and fp16.
    /// </summary>
    public static readonly BuildOptions DetectorDefaults = BuildOptions.Default with { Float32Outputs = false };

    /// <summary>
    /// Traces the architecture with these weights at the spec's batch and size, runs the standard passes (<paramref name="options"/>:
    /// <see cref="DetectorDefaults"/> when null; the precision is always the spec's), records the spec.
    /// <paramref name="inputChannelMultiple"/>: what the image channels are padded to with zero filters in the first convolution
    /// (<see cref="Passes.PadInputChannels"/>; null: <see cref="DefaultInputChannelMultiple"/> for 16-bit engines, none for float32; 0: none).
    /// </summary>
    public static ComputeGraph Build(DetectorEngineSpec spec, StateDict weights, string source, Action<string>? log = null,
        int? inputChannelMultiple = null, BuildOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(spec);
        spec.Validate();
        int multiple = inputChannelMultiple ?? (spec.Precision == DType.Float32 ? 0 : DefaultInputChannelMultiple);
        if (multiple < 0 || multiple == 1 || multiple > 64)
            throw new ArgumentOutOfRangeException(nameof(inputChannelMultiple), $"engine: input channel multiple {multiple} (0 for none, or 2 to 64)");
        var arch = Architectures.Get(spec.Architecture);
        var graph = GraphTracer.TraceDetector(arch, weights, source, spec.Batch, spec.Height, spec.Width);
        int traced = graph.Nodes.Count;
        foreach (var r in EngineBuilder.Optimize(graph, (options ?? DetectorDefaults) with { Precision = spec.Precision, InputChannelMultiple = multiple }))
            log?.Invoke($"{r.Pass}: {r.NodesBefore} -> {r.NodesAfter} nodes ({r.Time.TotalMilliseconds:F0} ms)");
        log?.Invoke($"{arch.Name}: {traced} traced nodes, {graph.Nodes.Count} after passes");
        var m = graph.Metadata;
        var c = CultureInfo.InvariantCulture;
        m[KeyBatch] = spec.Batch.ToString(c);
        m[KeyHeight] = spec.Height.ToString(c);
        m[KeyWidth] = spec.Width.ToString(c);
        m[KeyPrecision] = PrecisionName(spec.Precision);
        m[KeyScore] = spec.PostProcess.ScoreThreshold.ToString("R", c);
        m[KeyCandidates] = spec.PostProcess.CandidatesPerLevel.ToString(c);
        m[KeyNms] = spec.PostProcess.NmsThreshold.ToString("R", c);
        m[KeyDetections] = spec.PostProcess.DetectionsPerImage.ToString(c);
        return graph;
    }

    /// <summary>The short name of an engine precision: fp32, fp16 or bf16 (the metadata's and the command lines' spelling).</summary>
    public static string PrecisionName(DType precision) => precision switch
    {
        DType.Float32 => "fp32",
        DType.Float16 => "fp16",
        DType.BFloat16 => "bf16",
        _ => throw new ArgumentException($"engine: precision {precision} (expected float32, float16 or bfloat16)"),
    };

    /// <summary>fp32, fp16 or bf16 as a dtype; null for anything else.</summary>
    public static DType? ParsePrecision(string name) => name switch
    {
        "fp32" => DType.Float32,
        "fp16" => DType.Float16,
        "bf16" => DType.BFloat16,
        _ => null,
    };

    /// <summary>The build options recorded in the file header (informational; the graph metadata is what is read back).</summary>
    public static Dictionary<string, string> HeaderOptions(ComputeGraph graph) =>
        graph.Metadata.Where(kv => kv.Key != "grids").ToDictionary(kv => kv.Key, kv => kv.Value);

    /// <summary>The spec and feature grids recorded in a graph by <see cref="Build"/>; a missing or bad entry is an <see cref="EngineFormatException"/>.</summary>
    public static (DetectorEngineSpec Spec, ImageSize[] Grids) ReadSpec(ComputeGraph graph, string source)
    {
        ArgumentNullException.ThrowIfNull(graph);
        var m = graph.Metadata;
        string Get(string key) => m.TryGetValue(key, out var v) ? v
            : throw new EngineFormatException($"{source}: not a detector engine (metadata '{key}' missing; build it with `osprey export`)");
        int Int(string key) => int.TryParse(Get(key), NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) ? v
            : throw new EngineFormatException($"{source}: metadata '{key}' = '{Get(key)}' is not an integer");
        double Real(string key) => double.TryParse(Get(key), NumberStyles.Float, CultureInfo.InvariantCulture, out double v) ? v
            : throw new EngineFormatException($"{source}: metadata '{key}' = '{Get(key)}' is not a number");
        string name = Get("architecture");
        if (!Architectures.All.Any(a => a.Name == name)) throw new EngineFormatException($"{source}: unknown architecture '{name}'");
        var precision = ParsePrecision(Get(KeyPrecision))
            ?? throw new EngineFormatException($"{source}: metadata precision '{Get(KeyPrecision)}' (expected fp16, bf16 or fp32)");
        var post = new PostProcessOptions((float)Real(KeyScore), Int(KeyCandidates), Real(KeyNms), Int(KeyDetections));
        var spec = new DetectorEngineSpec(name, Int(KeyBatch), Int(KeyHeight), Int(KeyWidth), precision, post);
        try
        {
            spec.Validate();
        }
        catch (ArgumentException e)
        {
            throw new EngineFormatException($"{source}: {e.Message}");
        }
        var grids = new List<ImageSize>();
        foreach (string g in Get("grids").Split(','))
        {
            var hw = g.Split('x');
            if (hw.Length != 2 || !int.TryParse(hw[0], CultureInfo.InvariantCulture, out int gh) || !int.TryParse(hw[1], CultureInfo.InvariantCulture, out int gw) || gh < 1 || gw < 1)
                throw new EngineFormatException($"{source}: metadata grids '{Get("grids")}' is not a list of HxW");
            grids.Add(new ImageSize(gh, gw));
        }
        var input = graph.Inputs.FirstOrDefault(v => v.Name == "images")
            ?? throw new EngineFormatException($"{source}: the graph has no input 'images'");
        // 3 image channels, or more when the build padded them (PadInputChannels: the added channels are kept zero)
        if (input.Shape.Rank != 4 || input.Shape[1] < 3 || input.Shape[1] > 64
            || input.Shape != new Shape(spec.Batch, input.Shape[1], spec.Height, spec.Width) || input.DType != DType.Float32)
            throw new EngineFormatException($"{source}: input 'images' is {input.DType}{input.Shape}, the metadata says float32[{spec.Batch}, 3 (or padded up to 64), {spec.Height}, {spec.Width}]");
        foreach (string o in new[] { "class_logits", "box_regression" })
        {
            var v = graph.Outputs.FirstOrDefault(v => v.Name == o) ?? throw new EngineFormatException($"{source}: the graph has no output '{o}'");
            // the decode reads float32 heads, or 16-bit heads of an engine of that precision
            if (v.DType != DType.Float32 && v.DType != spec.Precision)
                throw new EngineFormatException($"{source}: output '{o}' is {v.DType.Name()} in a {PrecisionName(spec.Precision)} engine (expected float32{(spec.Precision == DType.Float32 ? "" : " or " + spec.Precision.Name())})");
        }
        return (spec, [.. grids]);
    }
}
