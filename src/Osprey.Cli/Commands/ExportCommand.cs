using System.CommandLine;
using System.Diagnostics;
using Osprey.Core;
using Osprey.Core.Backends;
using Osprey.Core.IO;
using Osprey.Core.Tensors;
using Osprey.Detection.Models;
using Osprey.Engine;
using Osprey.Engine.Graph;
using Osprey.Engine.Runtime;
using Osprey.Engine.Serialization;
using Osprey.Engine.Tuning;
using Spectre.Console;

namespace Osprey.Cli.Commands;

/// <summary>`osprey export`: trace, optimise and plan a detector at a fixed size and maximum batch, and write the engine file.</summary>
public static class ExportCommand
{
    public static Command Create()
    {
        var arch = new Option<string>("--arch") { Description = $"architecture: {string.Join(", ", Architectures.All.Select(a => a.Name))}", Required = true };
        var weights = new Option<string>("--weights") { Description = "safetensors file or PyTorch .pth/.pt checkpoint", Required = true };
        var size = SizeOption();
        var precision = new Option<string>("--precision") { Description = "fp16 or fp32 (fp16 needs --device cuda)", DefaultValueFactory = _ => "fp32" };
        var batch = new Option<int>("--batch") { Description = "maximum images per run (smaller batches are padded to it)", DefaultValueFactory = _ => 1 };
        var device = new Option<string>("--device") { Description = "target: cpu, cuda or cuda:N (the file loads only on that GPU architecture)", DefaultValueFactory = _ => "cpu" };
        var score = new Option<float?>("--score-threshold") { Description = "minimum score (default: the architecture's)" };
        var nms = new Option<double?>("--nms-threshold") { Description = "NMS IoU threshold" };
        var maxDet = new Option<int?>("--max-detections") { Description = "detections kept per image" };
        var output = new Argument<string>("OUT.engine") { Description = "engine file to write" };
        var cmd = new Command("export", "Build an optimised engine file from a detector's weights")
        {
            arch, weights, size, precision, batch, device, score, nms, maxDet, output,
        };
        cmd.SetAction(r => Run(r.GetValue(arch)!, r.GetValue(weights)!, r.GetValue(size), r.GetValue(precision)!, r.GetValue(batch),
            r.GetValue(device)!, r.GetValue(score), r.GetValue(nms), r.GetValue(maxDet), r.GetValue(output)!));
        return cmd;
    }

    /// <summary>--size N or --size H W.</summary>
    internal static Option<int[]> SizeOption() => new("--size")
    {
        Description = "input size: N (square) or H W (default: the architecture's, 300 for SSD, 800 for RetinaNet)",
        Arity = new ArgumentArity(1, 2),
        AllowMultipleArgumentsPerToken = true,
    };

    internal static (int H, int W) ParseSize(int[]? size, Architecture arch) => size switch
    {
        null or [] => (arch.Resize.MinSize, arch.Resize.Kind == ResizeKindFixed ? arch.Resize.MaxSize : arch.Resize.MinSize),
        [int n] => (n, n),
        [int h, int w] => (h, w),
        _ => throw new ArgumentException($"--size takes N or H W, got {size.Length} values"),
    };

    private const Osprey.Vision.Transforms.ResizeKind ResizeKindFixed = Osprey.Vision.Transforms.ResizeKind.Fixed;

    internal static DType ParsePrecision(string p, Device device)
    {
        var dtype = p switch
        {
            "fp32" => DType.Float32,
            "fp16" => DType.Float16,
            _ => throw new ArgumentException($"--precision {p}: expected fp16 or fp32"),
        };
        if (dtype == DType.Float16 && device.Type != DeviceType.Cuda)
            throw new ArgumentException("--precision fp16 needs a GPU target (--device cuda); the CPU runs fp32");
        return dtype;
    }

    internal static Device ParseDevice(string d)
    {
        try
        {
            var device = Device.Parse(d);
            if (device.Type is not (DeviceType.Cpu or DeviceType.Cuda)) throw new ArgumentException($"--device {d}: expected cpu, cuda or cuda:N");
            return device;
        }
        catch (FormatException e)
        {
            throw new ArgumentException($"--device {d}: {e.Message}", e);
        }
    }

    /// <summary>Builds the engine spec from the command line (architecture defaults plus overrides).</summary>
    internal static DetectorEngineSpec Spec(string archName, int[]? size, DType precision, int batch, float? score, double? nms, int? maxDet)
    {
        var arch = Architectures.Get(archName);
        var (h, w) = ParseSize(size, arch);
        var post = arch.PostProcess;
        if (score is float s) post = post with { ScoreThreshold = s };
        if (nms is double n) post = post with { NmsThreshold = n };
        if (maxDet is int d) post = post with { DetectionsPerImage = d };
        var spec = new DetectorEngineSpec(arch.Name, batch, h, w, precision, post);
        spec.Validate();
        return spec;
    }

    private static int Run(string archName, string weightsPath, int[]? size, string precision, int batch, string deviceName,
        float? score, double? nms, int? maxDet, string output)
    {
        try
        {
            var device = ParseDevice(deviceName);
            var spec = Spec(archName, size, ParsePrecision(precision, device), batch, score, nms, maxDet);
            var target = EngineDetector.TargetFor(device);
            var clock = Stopwatch.StartNew();
            ComputeGraph graph;
            using (var weights = WeightFile.Load(weightsPath))
                graph = DetectorEngines.Build(spec, weights, weightsPath, line => AnsiConsole.MarkupLine($"[grey]{Markup.Escape(line)}[/]"));
            // on a GPU: time the convolution algorithms now and store them (engine format v2); loading uses them without measuring
            var tuning = ConvAlgorithms.Measure(graph, BackendRegistry.Get(device));
            if (tuning.Convolutions > 0)
                AnsiConsole.MarkupLine($"[grey]measured {tuning.Convolutions} convolution algorithms ({tuning.Distinct} distinct), largest workspace {tuning.MaxWorkspaceBytes / 1048576.0:F1} MiB[/]");
            var plan = MemoryPlanner.Plan(graph);
            EngineWriter.WriteFile(output, graph, target, DetectorEngines.HeaderOptions(graph));
            AnsiConsole.MarkupLine($"wrote {Markup.Escape(output)}: {Markup.Escape(spec.Architecture)} {spec.Height}x{spec.Width} batch {spec.Batch} " +
                $"{(spec.Precision == DType.Float16 ? "fp16" : "fp32")} for {Markup.Escape(target.Architecture)}; {graph.Nodes.Count} nodes, " +
                $"weights {plan.WeightBytes / 1048576.0:F1} MiB, arena {plan.ArenaBytes / 1048576.0:F1} MiB ({new FileInfo(output).Length / 1048576.0:F1} MiB file) in {clock.Elapsed.TotalSeconds:F1} s");
            return 0;
        }
        catch (Exception e) when (e is ArgumentException or OspreyException or IOException or UnauthorizedAccessException)
        {
            AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
            return 2;
        }
    }
}
