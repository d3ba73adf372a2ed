using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Osprey.Core.Tensors;
using Osprey.Cuda;
using Osprey.Detection.Models;
using Osprey.Detection.Training;
using Osprey.Detection.Training.Data;
using Osprey.Detection.Training.Loop;
using Osprey.Vision.Imaging;

namespace Osprey.Bench;

/// <summary>
/// `gpu-train --arch A --batch N --size S [--precision amp|bf16|fp32] [--warmup N] [--steps N] [--json FILE]`: training
/// images/s of <see cref="Trainer.Step"/> on a CUDA GPU, the same work as bench/gpu/train_bench.py (torchvision, same call):
/// random init (<see cref="ModelInit.Random"/>), one fixed batch of random images at the network's size (collated, i.e. resized,
/// normalised and uploaded, once), 5 random boxes per image, 91 classes; one step = forward, the architecture's torchvision loss,
/// backward, clip at norm 10, SGD (momentum 0.9, weight decay 1e-4) on FP32 masters (the loss is read back every step). Warm-up
/// steps, then the timed steps; prints and appends one JSON line.
/// </summary>
internal static class GpuTrainBench
{
    public static int Run(string[] args)
    {
        string arch = "retinanet_resnet50_fpn", precision = "amp";
        int batch = 8, size = 800, warmup = 5, steps = 20;
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
        using var collated = TrainingBatch.Collate(samples, trainer.Preprocessor(0));
        double loss = 0;
        int skipped = 0;
        for (int i = 0; i < warmup; i++) trainer.Step(collated);
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < steps; i++)
        {
            var r = trainer.Step(collated);
            loss = r.Loss.Total;
            if (r.Skipped) skipped++;
        }
        sw.Stop();
        double s = sw.Elapsed.TotalSeconds;
        var line = JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["side"] = "osprey", ["arch"] = arch, ["batch"] = batch, ["size"] = size, ["precision"] = precision, ["steps"] = steps,
            ["seconds"] = s, ["images_per_s"] = batch * steps / s, ["ms_per_step"] = 1000 * s / steps, ["last_loss"] = loss, ["skipped"] = skipped,
        });
        Console.WriteLine(line);
        if (json is not null) File.AppendAllText(json, line + Environment.NewLine);
        return 0;
    }
}
