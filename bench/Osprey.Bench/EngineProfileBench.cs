using System.Diagnostics;
using System.Globalization;
using Osprey.Core;
using Osprey.Core.Backends;
using Osprey.Core.Tensors;
using Osprey.Cuda;
using Osprey.Detection.Boxes;
using Osprey.Detection.Evaluation;
using Osprey.Detection.Models;
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
    private sealed record Options(string Arch, int Batch, int H, int W, DType Precision, int Runs, string? Out, string? Data, float? Score, int? PadInput);

    private static Options? Parse(string[] args, string mode)
    {
        string arch = "ssd300_vgg16";
        int batch = 1, runs = 20;
        int[]? size = null;
        var precision = DType.Float16;
        string? output = null, data = null;
        float? score = null;
        int? padInput = null;
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{mode}: {args[i]} needs a value");
            int Int() => int.Parse(Next(), CultureInfo.InvariantCulture);
            switch (args[i])
            {
                case "--arch": arch = Next(); break;
                case "--batch": batch = Int(); break;
                case "--runs": runs = Int(); break;
                case "--size":
                    size = i + 2 < args.Length && !args[i + 2].StartsWith('-') ? [Int(), Int()] : [Int()];
                    break;
                case "--precision": precision = Next() switch { "fp16" => DType.Float16, "fp32" => DType.Float32, var p => throw new ArgumentException($"{mode}: --precision {p}") }; break;
                case "--out": output = Next(); break;
                case "--data": data = Next(); break;
                case "--score-threshold": score = float.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--pad-input": padInput = Int(); break;
                default:
                    Console.Error.WriteLine($"{mode}: unknown option '{args[i]}'");
                    return null;
            }
        }
        var a = Architectures.Get(arch);
        int h = size is [var s0, ..] ? s0 : a.Resize.MinSize, w = size is [_, var s1] ? s1 : h;
        return new Options(a.Name, batch, h, w, precision, runs, output, data, score, padInput);
    }

    private static CudaBackend Gpu()
    {
        if (!BackendRegistry.HasProvider(DeviceType.Cuda)) CudaBackend.Register();
        if (!CudaBackend.IsAvailable(out string why)) throw new OspreyException($"no CUDA GPU: {why}");
        return (CudaBackend)BackendRegistry.Get(Device.Cuda(0));
    }

    private static ComputeGraph Build(Options o, DType precision, float? score = null)
    {
        var arch = Architectures.Get(o.Arch);
        var post = score is float s ? arch.PostProcess with { ScoreThreshold = s } : arch.PostProcess;
        var spec = new DetectorEngineSpec(arch.Name, o.Batch, o.H, o.W, precision, post);
        spec.Validate();
        using var weights = SeededWeights.For(arch);
        return DetectorEngines.Build(spec, weights, "seeded", inputChannelMultiple: o.PadInput);
    }

    public static int Profile(string[] args)
    {
        var o = Parse(args, "engine-profile");
        if (o is null) return 2;
        var gpu = Gpu();
        var clock = Stopwatch.StartNew();
        var graph = Build(o, o.Precision);
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
        string title = $"{o.Arch} {o.H}x{o.W} batch {o.Batch} {(o.Precision == DType.Float16 ? "fp16" : "fp32")}, {inputChannels} input channels, on {gpu.Info.Name}";
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
        string data = o.Data ?? throw new ArgumentException("engine-accuracy: --data DIR (coco128: train2017/ and annotations/instances_train2017.json)");
        var gt = CocoJsonLoader.LoadGroundTruth(Path.Combine(data, "annotations", "instances_train2017.json"));
        var images = gt.Images.OrderBy(i => i.Id).ToArray();
        var decoded = images.Select(i => ImageDecoder.Decode(Path.Combine(data, "train2017", i.FileName))).ToArray();
        var device = Device.Cuda(0);
        _ = Gpu();
        var results = new List<IReadOnlyList<DetectedObject>[]>();
        var maps = new List<CocoEvalResult>();
        foreach (var precision in new[] { DType.Float32, DType.Float16 })
        {
            var graph = Build(o, precision, o.Score);
            using var engine = new EngineDetector(graph, device, "seeded");
            var dets = new IReadOnlyList<DetectedObject>[decoded.Length];
            for (int start = 0; start < decoded.Length; start += o.Batch)
            {
                var chunk = decoded.Skip(start).Take(o.Batch).ToArray();
                var got = engine.Detect(chunk);
                for (int i = 0; i < got.Length; i++) dets[start + i] = got[i];
            }
            results.Add(dets);
            var cats = gt.Categories.Select(c => c.Id).ToHashSet();
            var coco = new List<CocoDetection>();
            for (int i = 0; i < dets.Length; i++)
                foreach (var d in dets[i])
                    if (cats.Contains(d.Label)) coco.Add(new CocoDetection(images[i].Id, d.Label, d.X1, d.Y1, d.Width, d.Height, d.Score));
            maps.Add(new CocoEvaluator(gt).Evaluate(coco.ToArray()));
        }
        var agree = DetectionAgreement.Compare(results[0], results[1], 0.5);
        var strict = DetectionAgreement.Compare(results[0], results[1], 0.9);
        var c = CultureInfo.InvariantCulture;
        string report = string.Create(c, $"""
            ### fp16 vs fp32 engine on coco128 ({images.Length} images): {o.Arch} {o.H}x{o.W} batch {o.Batch}, seeded weights (no trained checkpoint here)
            | | fp32 | fp16 | difference |
            |---|---|---|---|
            | mAP@[.5:.95] | {maps[0].Stats[0]:F4} | {maps[1].Stats[0]:F4} | {maps[1].Stats[0] - maps[0].Stats[0]:+0.0000;-0.0000;0} |
            | mAP@.5 | {maps[0].Stats[1]:F4} | {maps[1].Stats[1]:F4} | {maps[1].Stats[1] - maps[0].Stats[1]:+0.0000;-0.0000;0} |
            | detections | {agree.Reference} | {agree.Candidate} | |
            match rate (same label, IoU >= 0.5): {100 * agree.MatchRate:F2} % ({agree.Matched}); IoU >= 0.9: {100 * strict.MatchRate:F2} %;
            matched: score |diff| max {agree.MaxScoreDiff:G3} mean {agree.MeanScoreDiff:G3}, box corner |diff| max {agree.MaxBoxDiff:G3} px, IoU mean {agree.MeanIou:F4} min {agree.MinIou:F4}

            """);
        Console.WriteLine(report);
        if (o.Out is not null) File.AppendAllText(o.Out, report + "\n");
        return 0;
    }
}
