using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Osprey.Core.Backends;
using Osprey.Core.Tensors;
using Osprey.Cuda;
using Osprey.Cuda.Runtime;
using Osprey.Detection.Models;
using Osprey.Detection.Training;
using Osprey.Detection.Training.Data;
using Osprey.Detection.Training.Loop;
using Osprey.Vision.Imaging;

namespace Osprey.Bench;

/// <summary>
/// `gpu-train --arch A --batch N --size S [--precision amp|bf16|fp32] [--warmup N] [--steps N] [--json FILE] [--profile N]`: training
/// images/s of <see cref="Trainer.Step"/> on a CUDA GPU, the same work as bench/gpu/train_bench.py (torchvision, same call):
/// random init (<see cref="ModelInit.Random"/>), one fixed batch of random images at the network's size (collated, i.e. resized,
/// normalised and uploaded, once), 5 random boxes per image, 91 classes; one step = forward, the architecture's torchvision loss,
/// backward, clip at norm 10, SGD (momentum 0.9, weight decay 1e-4) on FP32 masters (the loss is read back every step). Warm-up
/// steps, then the timed steps; prints and appends one JSON line with the NVRTC kernel launches and host synchronisations per
/// timed step (<see cref="CudaCounters"/>). With --profile N, N more steps with the device synchronised at the end of every
/// phase of the step (<see cref="Trainer.PhaseMark"/>: forward, the loss's parts, backward, optimizer, zero_grad) print each
/// phase's mean milliseconds (synchronising timers: the sum exceeds the free-running step time by the lost overlap).
/// </summary>
internal static class GpuTrainBench
{
    public static int Run(string[] args)
    {
        string arch = "retinanet_resnet50_fpn", precision = "amp";
        int batch = 8, size = 800, warmup = 5, steps = 20, profile = 0;
        string? json = null;
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            string v = args[i + 1];
            switch (args[i])
            {
                case "--arch": arch = v; break;
                case "--batch": batch = int.Parse(v, CultureInfo.InvariantCulture); break;
                case "--size": size = int.Parse(v, CultureInfo.InvariantCulture); break;
                case "--precision": precision = v; break;
                case "--warmup": warmup = int.Parse(v, CultureInfo.InvariantCulture); break;
                case "--steps": steps = int.Parse(v, CultureInfo.InvariantCulture); break;
                case "--json": json = v; break;
                case "--profile": profile = int.Parse(v, CultureInfo.InvariantCulture); break;
                default: Console.Error.WriteLine($"gpu-train: unknown option '{args[i]}'"); return 2;
            }
        }
        CudaBackend.Register();
        if (!CudaBackend.IsAvailable(out string why)) { Console.Error.WriteLine($"gpu-train: no CUDA GPU ({why})"); return 2; }
        var options = new TrainOptions
        {
            Architecture = arch, BatchSize = batch, Iterations = int.MaxValue, LearningRate = 0.001, Warmup = 0, Milestones = [int.MaxValue],
            Resize = size, MaxSize = size, FlipProbability = 0, Device = Device.Cuda(0), Precision = TrainPrecisions.Parse(precision),
        };
        using var model = Architectures.Get(arch).CreateFor(91);
        using var init = ModelInit.Random(model, 0);
        using var trainer = Trainer.Create(options, 91, init, "random init");
        var samples = RandomSamples(batch, size);
        using var collated = TrainingBatch.Collate(samples, trainer.Preprocessor(0));
        double loss = 0;
        int skipped = 0;
        for (int i = 0; i < warmup; i++) trainer.Step(collated);
        var backend = (CudaBackend)BackendRegistry.Get(options.Device);
        backend.Synchronize();
        long launches0 = CudaCounters.Launches, syncs0 = CudaCounters.HostSyncs;
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < steps; i++)
        {
            var r = trainer.Step(collated);
            loss = r.Loss.Total;
            if (r.Skipped) skipped++;
        }
        backend.Synchronize();
        sw.Stop();
        double launches = (CudaCounters.Launches - launches0) / (double)steps, syncs = (CudaCounters.HostSyncs - syncs0 - 1) / (double)steps;
        double s = sw.Elapsed.TotalSeconds;
        var phases = profile > 0 ? Profile(trainer, collated, backend, profile) : null;
        var line = JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["side"] = "osprey", ["arch"] = arch, ["batch"] = batch, ["size"] = size, ["precision"] = precision, ["steps"] = steps,
            ["seconds"] = s, ["images_per_s"] = batch * steps / s, ["ms_per_step"] = 1000 * s / steps, ["last_loss"] = loss, ["skipped"] = skipped,
            ["launches_per_step"] = launches, ["host_syncs_per_step"] = syncs,
        });
        Console.WriteLine(line);
        if (json is not null) File.AppendAllText(json, line + Environment.NewLine);
        if (phases is not null)
        {
            double total = phases.Values.Sum();
            Console.WriteLine($"step profile: {arch} batch {batch} size {size} {precision}, {profile} steps, synchronising timers (ms/step); " +
                $"free-running {1000 * s / steps:F2} ms/step, {launches:F0} NVRTC launches and {syncs:F1} host syncs per step");
            Console.WriteLine("| phase | ms | share |");
            Console.WriteLine("|---|---:|---:|");
            foreach (var (name, ms) in phases)
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {name} | {ms:F2} | {100 * ms / total:F1}% |"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| total | {total:F2} | |"));
        }
        return 0;
    }

    /// <summary>The benchmark's fixed batch, as bench/gpu/train_bench.py draws its own: random pixels at the network's size and 5
    /// random boxes with labels 1-90 per image (seeded: the same batch every run).</summary>
    internal static DetectionSample[] RandomSamples(int batch, int size)
    {
        var rng = new Random(1);
        var samples = new DetectionSample[batch];
        for (int i = 0; i < batch; i++)
        {
            var img = new RgbImage(size, size);
            rng.NextBytes(img.Pixels);
            var boxes = new float[20];
            var labels = new int[5];
            for (int b = 0; b < 5; b++)
            {
                float x = (float)(rng.NextDouble() * size * 0.6), y = (float)(rng.NextDouble() * size * 0.6);
                float w = (float)(rng.NextDouble() * size * 0.3 + size * 0.05), h = (float)(rng.NextDouble() * size * 0.3 + size * 0.05);
                boxes[b * 4] = x; boxes[b * 4 + 1] = y;
                boxes[b * 4 + 2] = Math.Min(x + w, size - 1); boxes[b * 4 + 3] = Math.Min(y + h, size - 1);
                labels[b] = rng.Next(1, 91);
            }
            samples[i] = new DetectionSample(img, boxes, labels, i, "random");
        }
        return samples;
    }

    /// <summary>Mean milliseconds per phase over <paramref name="count"/> steps, the device synchronised at every phase end.</summary>
    private static Dictionary<string, double> Profile(Trainer trainer, TrainingBatch batch, CudaBackend backend, int count)
    {
        var phases = new Dictionary<string, double>();
        var lap = new Stopwatch();
        trainer.PhaseMark = name =>
        {
            backend.Synchronize();
            phases[name] = phases.GetValueOrDefault(name) + lap.Elapsed.TotalMilliseconds / count;
            lap.Restart();
        };
        try
        {
            for (int i = 0; i < count; i++)
            {
                backend.Synchronize();
                lap.Restart();
                trainer.Step(batch);
            }
        }
        finally
        {
            trainer.PhaseMark = null;
        }
        return phases;
    }
}
