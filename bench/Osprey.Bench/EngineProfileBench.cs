using System.Diagnostics;
using System.Globalization;
using Osprey.Core;
using Osprey.Core.Backends;
using Osprey.Core.IO;
using Osprey.Core.Tensors;
using Osprey.Cuda;
using Osprey.Detection.Boxes;
using Osprey.Detection.Evaluation;
using Osprey.Detection.Models;
using Osprey.Detection.Training.Loop;
using Osprey.Engine;
using Osprey.Engine.Graph;
using Osprey.Engine.Runtime;
using Osprey.Engine.Serialization;
using Osprey.Engine.Tuning;
using Osprey.Vision.Codecs;
using Osprey.Vision.Imaging;

namespace Osprey.Bench;

/// <summary>
/// `engine-profile`: where an engine's network time goes. Builds the detector engine (seeded weights), measures the
/// convolution algorithms (stored in the graph), writes and re-reads the engine file (the stored algorithms are pinned at
/// load: no measuring), then times every node with CUDA events (<see cref="EngineProfiler"/>) and prints per op kind and
/// the slowest nodes, with the convolutions' TFLOP/s and share of the H100 SXM dense fp16 tensor-core peak.
/// `engine-accuracy`: FP32 vs FP16 engines over coco128: COCO mAP of each (Osprey's evaluator), the difference, and how
/// many FP32 detections the FP16 engine reproduces (<see cref="DetectionAgreement"/>).
/// </summary>
internal static class EngineProfileBench
{
    /// <param name="Weights">null: <see cref="SeededWeights"/> (engine-profile always; engine-accuracy without --weights).</param>
    /// <param name="Device">engine-accuracy's device (cpu, cuda, cuda:N); engine-profile runs on cuda:0.</param>
    /// <param name="Precisions">engine-accuracy: the first is the reference the others are compared with.</param>
    private sealed record Options(string Arch, int Batch, int H, int W, DType Precision, int Runs, string? Out, string? Data, float? Score, int? PadInput, int Pad,
        bool Fp32Heads, string? Weights = null, string? Annotations = null, string? Images = null, string Device = "cuda", DType[]? Precisions = null,
        int? Classes = null);

    private static Options? Parse(string[] args, string mode)
    {
        string? arch = null;
        int batch = 1, runs = 20;
        int[]? size = null;
        var precision = DType.Float16;
        string? output = null, data = null, weights = null, annotations = null, images = null;
        string device = "cuda";
        DType[]? precisions = null;
        float? score = null;
        int? padInput = null, classes = null;
        int pad = BuildOptions.Default.PadConvChannelsTo;
        bool fp32Heads = false;
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{mode}: {args[i]} needs a value");
            int Int()
            {
                string v = Next();
                return int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) ? n
                    : throw new ArgumentException($"{mode}: {args[i - 1]} {v}: expected an integer");
            }
            switch (args[i])
            {
                case "--arch": arch = Next(); break;
                case "--batch": batch = Int(); break;
                case "--runs": runs = Int(); break;
                case "--size":
                    size = i + 2 < args.Length && !args[i + 2].StartsWith('-') ? [Int(), Int()] : [Int()];
                    break;
                case "--resize": size = [Int()]; break;   // the square input N (infer's and demo's spelling of --size N)
                case "--precision": precision = Next() switch { "fp16" => DType.Float16, "fp32" => DType.Float32, var p => throw new ArgumentException($"{mode}: --precision {p}") }; break;
                case "--precisions":
                    precisions = [.. Next().Split(',').Select(p => DetectorEngines.ParsePrecision(p.Trim())
                        ?? throw new ArgumentException($"{mode}: --precisions: unknown precision '{p}' (expected a list of fp32, fp16, bf16)"))];
                    if (precisions.Length < 2 || precisions.Distinct().Count() != precisions.Length)
                        throw new ArgumentException($"{mode}: --precisions {args[i]}: give at least two different precisions, the reference first (e.g. fp32,fp16,bf16)");
                    break;
                case "--out": output = Next(); break;
                case "--data": data = Next(); break;
                case "--weights": weights = Next(); break;
                case "--annotations": annotations = Next(); break;
                case "--images": images = Next(); break;
                case "--device": device = Next(); break;
                case "--classes": classes = Int(); break;
                case "--pad-channels": pad = Int(); break;
                case "--fp32-heads": fp32Heads = true; break;
                case "--score-threshold": score = float.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--pad-input": padInput = Int(); break;
                default:
                    Console.Error.WriteLine($"{mode}: unknown option '{args[i]}'");
                    return null;
            }
        }
        var a = Architectures.Get(arch ?? (weights is null ? "ssd300_vgg16" : CheckpointArchitecture(weights, mode)));
        int h = size is [var s0, ..] ? s0 : a.Resize.MinSize, w = size is [_, var s1] ? s1 : h;
        return new Options(a.Name, batch, h, w, precision, runs, output, data, score, padInput, pad, fp32Heads, weights, annotations, images, device,
            precisions, classes);
    }

    /// <summary>The architecture an `osprey train`/`osprey demo` checkpoint names (its run header); other weight files need --arch.</summary>
    private static string CheckpointArchitecture(string path, string mode)
    {
        using var dict = WeightFile.Load(path);
        try
        {
            return TrainCheckpoint.ReadHeader(dict, path).Architecture;
        }
        catch (WeightFileException e)
        {
            throw new ArgumentException($"{mode}: --weights {path} does not name its architecture ({e.Message}): give --arch", e);
        }
    }

    /// <summary>
    /// The weights to build from and how the report names them: seeded, or the file's (its class count read from its
    /// classification layer, as `osprey infer`/`export` do, and checked against --classes and a checkpoint's run header).
    /// </summary>
    private static (StateDict Weights, string Source) LoadWeights(Options o, string mode)
    {
        var arch = Architectures.Get(o.Arch);
        if (o.Weights is null)
        {
            if (o.Classes is not null) throw new ArgumentException($"{mode}: --classes needs --weights (seeded weights have {o.Arch}'s reference class count)");
            return (SeededWeights.For(arch), "seeded");
        }
        var dict = WeightFile.Load(o.Weights);
        try
        {
            int? classes = arch.ClassesIn(dict);
            if (dict.Metadata.TryGetValue("osprey.arch", out var named) && !string.Equals(named, arch.Name, StringComparison.OrdinalIgnoreCase))
                throw new ArgumentException($"{mode}: --weights {o.Weights} is a {named} checkpoint, not {arch.Name} (drop --arch or fix it)");
            if (dict.Metadata.TryGetValue("osprey.classes", out var m) && classes is int k && m != k.ToString(CultureInfo.InvariantCulture))
                throw new ArgumentException($"{mode}: --weights {o.Weights}: its header says {m} classes, its classification layer {k}");
            if (o.Classes is int want && want != (classes ?? want))
                throw new ArgumentException($"{mode}: --classes {want}, but --weights {o.Weights} has {classes} classes");
            return (dict, $"{Path.GetFileName(o.Weights)} ({classes?.ToString(CultureInfo.InvariantCulture) ?? "reference"} classes)");
        }
        catch
        {
            dict.Dispose();
            throw;
        }
    }

    private static CudaBackend Gpu() => Gpu(Device.Cuda(0));

    private static CudaBackend Gpu(Device device)
    {
        if (!BackendRegistry.HasProvider(DeviceType.Cuda)) CudaBackend.Register();
        if (!CudaBackend.IsAvailable(out string why)) throw new OspreyException($"no CUDA GPU: {why}");
        return (CudaBackend)BackendRegistry.Get(device);
    }

    private static ComputeGraph Build(Options o, DType precision, StateDict weights, string source, float? score = null)
    {
        var arch = Architectures.Get(o.Arch);
        var post = score is float s ? arch.PostProcess with { ScoreThreshold = s } : arch.PostProcess;
        var spec = new DetectorEngineSpec(arch.Name, o.Batch, o.H, o.W, precision, post);
        spec.Validate();
        return DetectorEngines.Build(spec, weights, source, inputChannelMultiple: o.PadInput,
            options: DetectorEngines.DetectorDefaults with { PadConvChannelsTo = o.Pad, Float32Outputs = o.Fp32Heads });
    }

    public static int Profile(string[] args)
    {
        var o = Parse(args, "engine-profile");
        if (o is null) return 2;
        if (o.Weights is not null || o.Data is not null || o.Annotations is not null || o.Images is not null || o.Device != "cuda" || o.Classes is not null || o.Precisions is not null)
        {
            Console.Error.WriteLine("engine-profile: --weights, --data, --annotations, --images, --device, --classes and --precisions are engine-accuracy's options");
            return 2;
        }
        var gpu = Gpu();
        var clock = Stopwatch.StartNew();
        ComputeGraph graph;
        using (var seeded = SeededWeights.For(Architectures.Get(o.Arch)))
            graph = Build(o, o.Precision, seeded, "seeded");
        double buildS = clock.Elapsed.TotalSeconds;
        clock.Restart();
        var tuning = ConvAlgorithms.Measure(graph, gpu);
        double tuneS = clock.Elapsed.TotalSeconds;
        var target = EngineDetector.TargetFor(Device.Cuda(0));
        byte[] file = EngineWriter.Write(graph, target, DetectorEngines.HeaderOptions(graph));
        var (_, loaded) = EngineReader.Read(file, target, "profile.engine");
        int stored = loaded.Nodes.Count(n => n.Algorithm is not null);
        bool same = graph.Nodes.Zip(loaded.Nodes).All(p => p.First.Algorithm == p.Second.Algorithm);
        clock.Restart();
        using var exec = new Executor(loaded, gpu);
        double loadS = clock.Elapsed.TotalSeconds;
        var profile = EngineProfiler.Profile(exec, o.Runs);
        int inputChannels = graph.Inputs.Single(v => v.Name == "images").Shape[1];
        string title = $"{o.Arch} {o.H}x{o.W} batch {o.Batch} {(o.Precision == DType.Float16 ? "fp16" : "fp32")}, {inputChannels} input channels, on {gpu.Info.Name}, " +
            $"channels padded to {(o.Pad > 1 ? o.Pad.ToString(CultureInfo.InvariantCulture) : "none")}, {(o.Fp32Heads ? "float32" : "16-bit")} heads";
        string report = profile.Format(title, EngineProfiler.H100SxmFp16DenseTflops)
            + $"\nbuild {buildS:F1} s; algorithm measurement {tuneS:F1} s ({tuning.Convolutions} convolutions, {tuning.Distinct} distinct choices, " +
              $"largest workspace {tuning.MaxWorkspaceBytes / 1048576.0:F1} MiB); engine file {file.Length / 1048576.0:F1} MiB with {stored} stored algorithms " +
              $"(round trip {(same ? "identical" : "DIFFERENT")}); executor setup from the file {loadS:F2} s (pinned, no measuring), reserved workspace {exec.WorkspaceBytes / 1048576.0:F1} MiB\n";
        var conv = profile.ByKind().FirstOrDefault(k => k.Kind == OpKind.Conv2d);
        if (conv.Ms > 0)
            report += $"convolutions: {conv.Ms:F3} ms of {profile.SumMs:F3} ms, {conv.Flops / 1e12:F3} TFLOP, {conv.Flops / (conv.Ms * 1e9):F1} TFLOP/s = " +
                $"{100 * conv.Flops / (conv.Ms * 1e9) / EngineProfiler.H100SxmFp16DenseTflops:F1} % of {EngineProfiler.H100SxmFp16DenseTflops} TFLOP/s\n";
        Console.WriteLine(report);
        if (o.Out is not null) File.AppendAllText(o.Out, report + "\n");
        if (!same) return 1;
        return 0;
    }

    public static int Accuracy(string[] args)
    {
        var o = Parse(args, "engine-accuracy");
        if (o is null) return 2;
        var (annotations, imageDir, setName) = DataSet(o);
        var device = ParseDevice(o.Device);
        // the GPU opened first (as before: a clear error without one); on the CPU the 16-bit engines are the CPU backend's
        // emulation (float16/bfloat16 storage, float32 arithmetic), not cuDNN's kernels
        string where = device.Type == DeviceType.Cuda ? Gpu(device).Info.Name : $"the CPU ({Environment.ProcessorCount} threads)";
        var gt = CocoJsonLoader.LoadGroundTruth(annotations);
        var images = gt.Images.OrderBy(i => i.Id).ToArray();
        var decoded = images.Select(i => ImageDecoder.Decode(Path.Combine(imageDir, i.FileName))).ToArray();
        var precisions = o.Precisions ?? [DType.Float32, DType.Float16];
        var results = new List<IReadOnlyList<DetectedObject>[]>();
        var maps = new List<CocoEvalResult>();
        var seconds = new List<double>();
        var (weights, source) = LoadWeights(o, "engine-accuracy");
        using (weights)
            foreach (var precision in precisions)
            {
                var graph = Build(o, precision, weights, source, o.Score);
                using var engine = new EngineDetector(graph, device, source);
                var dets = new IReadOnlyList<DetectedObject>[decoded.Length];
                var clock = Stopwatch.StartNew();
                for (int start = 0; start < decoded.Length; start += o.Batch)
                {
                    var chunk = decoded.Skip(start).Take(o.Batch).ToArray();
                    var got = engine.Detect(chunk);
                    for (int i = 0; i < got.Length; i++) dets[start + i] = got[i];
                }
                seconds.Add(clock.Elapsed.TotalSeconds);
                results.Add(dets);
                var cats = gt.Categories.Select(c => c.Id).ToHashSet();
                var coco = new List<CocoDetection>();
                for (int i = 0; i < dets.Length; i++)
                    foreach (var d in dets[i])
                        if (cats.Contains(d.Label)) coco.Add(new CocoDetection(images[i].Id, d.Label, d.X1, d.Y1, d.Width, d.Height, d.Score));
                maps.Add(new CocoEvaluator(gt).Evaluate(coco.ToArray()));
            }
        var c = CultureInfo.InvariantCulture;
        string Name(int k) => DetectorEngines.PrecisionName(precisions[k]);
        string Row(string what, Func<int, string> cell) => $"| {what} | {string.Join(" | ", Enumerable.Range(0, precisions.Length).Select(cell))} |";
        var lines = new List<string>
        {
            string.Create(c, $"### {string.Join(" vs ", precisions.Select(DetectorEngines.PrecisionName))} engines on {setName} ({images.Length} images): {o.Arch} {o.H}x{o.W} batch {o.Batch}, weights {source}, on {where}"),
            Row("", k => Name(k)),
            Row("---", _ => "---"),
            Row("mAP@[.5:.95]", k => string.Create(c, $"{maps[k].Stats[0]:F4}{(k == 0 ? "" : $" ({maps[k].Stats[0] - maps[0].Stats[0]:+0.0000;-0.0000;0})")}")),
            Row("mAP@.5", k => string.Create(c, $"{maps[k].Stats[1]:F4}{(k == 0 ? "" : $" ({maps[k].Stats[1] - maps[0].Stats[1]:+0.0000;-0.0000;0})")}")),
            Row("detections", k => results[k].Sum(d => d.Count).ToString(c)),
            Row("seconds (not a benchmark)", k => seconds[k].ToString("F1", c)),
        };
        for (int k = 1; k < precisions.Length; k++)
        {
            var agree = DetectionAgreement.Compare(results[0], results[k], 0.5);
            var strict = DetectionAgreement.Compare(results[0], results[k], 0.9);
            lines.Add(string.Create(c, $"{Name(k)} vs {Name(0)}: match rate (same label, IoU >= 0.5) {100 * agree.MatchRate:F2} % ({agree.Matched} of {Math.Max(agree.Reference, agree.Candidate)}); " +
                $"IoU >= 0.9: {100 * strict.MatchRate:F2} %; matched: score |diff| max {agree.MaxScoreDiff:G3} mean {agree.MeanScoreDiff:G3}, " +
                $"box corner |diff| max {agree.MaxBoxDiff:G3} px, IoU mean {agree.MeanIou:F4} min {agree.MinIou:F4}"));
        }
        string report = string.Join("\n", lines) + "\n";
        Console.WriteLine(report);
        if (o.Out is not null) File.AppendAllText(o.Out, report + "\n");
        return 0;
    }

    /// <summary>--annotations FILE --images DIR (any COCO-format set), or --data DIR in coco128's layout.</summary>
    private static (string Annotations, string Images, string Name) DataSet(Options o)
    {
        const string mode = "engine-accuracy";
        if (o.Data is not null && (o.Annotations is not null || o.Images is not null))
            throw new ArgumentException($"{mode}: give --data DIR (coco128's layout) or --annotations FILE --images DIR, not both");
        string annotations, images, name;
        if (o.Data is not null)
        {
            (annotations, images, name) = (Path.Combine(o.Data, "annotations", "instances_train2017.json"), Path.Combine(o.Data, "train2017"), "coco128");
        }
        else if (o.Annotations is not null && o.Images is not null)
        {
            // named by the annotations file and its folder (e.g. val/annotations.json)
            string full = Path.GetFullPath(o.Annotations);
            (annotations, images, name) = (o.Annotations, o.Images, Path.Combine(Path.GetFileName(Path.GetDirectoryName(full)) ?? "", Path.GetFileName(full)));
        }
        else
        {
            throw new ArgumentException($"{mode}: --data DIR (coco128: train2017/ and annotations/instances_train2017.json), or --annotations FILE --images DIR (a COCO-format set)");
        }
        if (!File.Exists(annotations)) throw new ArgumentException($"{mode}: annotations file {annotations} not found");
        if (!Directory.Exists(images)) throw new ArgumentException($"{mode}: image folder {images} not found");
        return (annotations, images, name);
    }

    private static Device ParseDevice(string name)
    {
        Device device;
        try
        {
            device = Device.Parse(name);
        }
        catch (FormatException e)
        {
            throw new ArgumentException($"engine-accuracy: --device {name}: {e.Message}", e);
        }
        if (device.Type is not (DeviceType.Cpu or DeviceType.Cuda)) throw new ArgumentException($"engine-accuracy: --device {name}: expected cpu, cuda or cuda:N");
        return device;
    }
}
