using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Osprey.Core.Backends;
using Osprey.Core.Tensors;
using Osprey.Cuda;
using Osprey.Detection.Models;
using Osprey.Detection.Training.Data;
using Osprey.Detection.Training.Loop;

namespace Osprey.Bench;

/// <summary>
/// `train-ddp`: training images/s of a detector on 1, 2, ... GPUs at the same per-GPU batch (data parallel, NCCL all-reduce),
/// and the scaling efficiency ips(N) / (N x ips(1)). The batches are synthetic-shape images of one fixed size held in memory,
/// so the figure is the training step (collate on each rank, forward, loss, backward, bucketed all-reduce, clip, SGD) without
/// the data loader. Each configuration: warm-up iterations (kernel compilation, cuDNN algorithm search), then timed ones.
/// --precision fp32 (exact float32, no TF32), amp or bf16, or a list (fp32,amp); bench/gpu/train_ddp_torch.py is torch DDP's side.
/// </summary>
internal static class TrainScalingBench
{
    public static int Run(string[] args)
    {
        string arch = "retinanet_resnet50_fpn", json = "", precision = "fp32";
        int size = 800, perGpu = 4, warmup = 3, iters = 8;
        int[] gpus = [1, 2];
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"train-ddp: {args[i]} needs a value");
            int Int() => int.Parse(Next(), CultureInfo.InvariantCulture);
            switch (args[i])
            {
                case "--arch": arch = Next(); break;
                case "--size": size = Int(); break;
                case "--per-gpu": perGpu = Int(); break;
                case "--warmup": warmup = Int(); break;
                case "--iters": iters = Int(); break;
                case "--gpus": gpus = Next().Split(',').Select(v => int.Parse(v, CultureInfo.InvariantCulture)).ToArray(); break;
                case "--json": json = Next(); break;
                case "--precision": precision = Next(); break;
                default: Console.Error.WriteLine($"train-ddp: unknown option '{args[i]}'"); return 2;
            }
        }
        CudaBackend.Register();
        if (!CudaBackend.IsAvailable(out string why)) { Console.Error.WriteLine($"train-ddp: no GPU ({why})"); return 2; }
        int available = Osprey.Cuda.Runtime.CudaDriver.DeviceCount(out _);
        gpus = gpus.Where(g => g <= available).ToArray();
        if (gpus.Length == 0) { Console.Error.WriteLine($"train-ddp: this machine has {available} GPU(s)"); return 2; }

        string dir = Path.Combine(Path.GetTempPath(), "osprey-train-ddp-" + Environment.ProcessId);
        var set = SyntheticShapes.Generate(dir, new SyntheticShapesOptions(Images: perGpu * gpus.Max() * 2, MinSize: size, MaxSize: size, MaxObjects: 4, Seed: 1, MinObjectSize: 32));
        var data = new CocoDetectionDataset(set.AnnotationsPath, set.ImageDirectory, new CocoDatasetOptions(LabelMapping.CategoryId, SkipImagesWithoutBoxes: true));
        var samples = Enumerable.Range(0, data.Count).Select(data.Load).ToArray();
        int classes = TrainSetup.DefaultClasses(data);
        Console.WriteLine($"train-ddp: {arch}, {size}x{size}, {perGpu} images per GPU, {precision}, {warmup} warm-up + {iters} timed iterations; {available} GPU(s): {((CudaBackend)BackendRegistry.Get(Device.Cuda(0))).Name}");
        var rows = new List<(string Precision, int Gpus, double Ips, double StepMs, int Skipped)>();
        foreach (string prec in precision.Split(',', StringSplitOptions.TrimEntries))
        foreach (int g in gpus)
        {
            var mode = TrainPrecisions.Parse(prec);
            var options = new TrainOptions
            {
                Architecture = arch, BatchSize = perGpu * g, Iterations = 1_000_000, LearningRate = 0.01, Warmup = 1000, Milestones = [1_000_000],
                Resize = size, MaxSize = size, FlipProbability = 0, Device = Device.Cuda(0), Workers = 1, Precision = mode,
            };
            using var model = Architectures.Get(arch).CreateFor(classes);
            using var init = ModelInit.Random(model, 0);
            using var trainer = Trainer.Create(options, classes, init, "bench init");
            if (g > 1) trainer.EnableDataParallel(Enumerable.Range(0, g).Select(d => Device.Cuda(d)).ToArray());
            int at = 0;
            bool Step()
            {
                var batch = new DetectionSample[perGpu * g];
                for (int k = 0; k < batch.Length; k++) batch[k] = samples[at++ % samples.Length];
                if (trainer.Parallel is { } p) return p.Step(batch).Skipped;
                using var b = TrainingBatch.Collate(batch, trainer.Preprocessor(trainer.Iteration));
                return trainer.Step(b).Skipped;
            }
            void SyncAll()
            {
                for (int d = 0; d < g; d++) BackendRegistry.Get(Device.Cuda(d)).Synchronize();
            }
            for (int w = 0; w < warmup; w++) Step();
            SyncAll();
            var clock = Stopwatch.StartNew();
            int skipped = 0;
            for (int t = 0; t < iters; t++) if (Step()) skipped++;
            SyncAll();
            double secs = clock.Elapsed.TotalSeconds;
            double ips = iters * perGpu * g / secs;
            rows.Add((prec, g, ips, secs * 1000 / iters, skipped));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {prec}, {g} GPU(s): {ips:F1} images/s ({secs * 1000 / iters:F1} ms per iteration of {perGpu * g} images; {skipped} amp steps skipped)"));
        }
        Console.WriteLine();
        Console.WriteLine($"| precision | GPUs | global batch | images/s | ms / iteration | scaling efficiency |");
        Console.WriteLine($"|---|---:|---:|---:|---:|---:|");
        foreach (var (prec, g, ips, ms, _) in rows)
        {
            double one = rows.FirstOrDefault(r => r.Precision == prec && r.Gpus == 1).Ips;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {prec} | {g} | {g * perGpu} | {ips:F1} | {ms:F1} | {(one > 0 ? $"{100 * ips / (g * one):F0} %" : "-")} |"));
        }
        // one JSON line per GPU count, appended (bench/gpu/ddp_table.py puts them beside torch DDP's lines)
        if (json.Length > 0)
            foreach (var r in rows)
                File.AppendAllText(json, JsonSerializer.Serialize(new
                {
                    side = "osprey", gpus = r.Gpus, precision = r.Precision, images_per_s = r.Ips, ms_per_iter = r.StepMs, arch, size, per_gpu = perGpu,
                    iters, warmup, skipped = r.Skipped,
                }) + Environment.NewLine);
        try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        return 0;
    }
}
