using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Cuda;
using Osprey.Detection.Models;
using Osprey.Detection.Training;
using Osprey.Detection.Training.Data;
using Osprey.Detection.Training.Loop;
using Osprey.Detection.Training.Optim;
using Osprey.Vision.Imaging;

namespace Osprey.Bench;

/// <summary>
/// `optim-step [--steps N] [--warmup N] [--train-steps N] [--sets retina,ssd] [--json FILE]`: the optimiser phase of a training
/// step (amp: inf/NaN check, unscale, clip at norm 10, SGD momentum 0.9 + weight decay 1e-4 on FP32 masters, float16 refresh;
/// fp32: clip + SGD) on the parameter sets of RetinaNet-R50-FPN and SSD300 (the trainer's own tensors and flat gradient
/// buffers, filled with seeded values), one tensor at a time (<see cref="MixedPrecision"/> with multiTensor: false) vs the
/// multi-tensor kernels; ms per optimiser step (synchronised each step). With --train-steps N (default 10; 0: off), also
/// whole <see cref="Trainer.Step"/>s at amp (RetinaNet batch 8 at 800, SSD300 batch 64) with
/// <see cref="TrainOptions.MultiTensorOptimizer"/> off and on, as `gpu-train` runs them (random init, one fixed batch).
/// --json also records the parameter shapes (mode "optim-shapes") for bench/gpu/optim_bench.py, the torch side.
/// </summary>
internal static class OptimStepBench
{
    public static int Run(string[] args)
    {
        int steps = 20, warmup = 3, trainSteps = 10;
        string sets = "retina,ssd";
        string? json = null;
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            string v = args[i + 1];
            switch (args[i])
            {
                case "--steps": steps = int.Parse(v, CultureInfo.InvariantCulture); break;
                case "--warmup": warmup = int.Parse(v, CultureInfo.InvariantCulture); break;
                case "--train-steps": trainSteps = int.Parse(v, CultureInfo.InvariantCulture); break;
                case "--sets": sets = v; break;
                case "--json": json = v; break;
                default: Console.Error.WriteLine($"optim-step: unknown option '{args[i]}'"); return 2;
            }
        }
        CudaBackend.Register();
        if (!CudaBackend.IsAvailable(out string why)) { Console.Error.WriteLine($"optim-step: no CUDA GPU ({why})"); return 2; }
        var backend = (CudaBackend)Osprey.Core.Backends.BackendRegistry.Get(Device.Cuda(0));
        Console.WriteLine($"optim-step on {backend.Name}");
        Console.WriteLine();
        Console.WriteLine("| parameter set | precision | tensors | elements | per-tensor ms | multi-tensor ms | speed-up |");
        Console.WriteLine("|---|---|---:|---:|---:|---:|---:|");
        var trainRows = new List<string>();
        foreach (var set in sets.Split(','))
        {
            var (arch, batch, size) = set.Trim() switch
            {
                "retina" => ("retinanet_resnet50_fpn", 8, 800),
                "ssd" => ("ssd300_vgg16", 64, 300),
                _ => throw new ArgumentException($"optim-step: --sets {set}: expected retina or ssd"),
            };
            foreach (var precision in new[] { TrainPrecision.Amp, TrainPrecision.Fp32 })
            {
                using var trainer = NewTrainer(arch, batch, size, precision, multiTensor: true);
                var values = trainer.Parameters.Select(p => p.Value).ToArray();
                var grads = trainer.Parameters.Select(p => p.GradBuffer!).ToArray();
                Fill(grads, precision == TrainPrecision.Amp ? 1.0 : 1e-3);
                long elements = values.Sum(v => v.Numel);
                Append(json, new Dictionary<string, object>
                {
                    ["mode"] = "optim-shapes", ["arch"] = arch, ["precision"] = precision.Name(),
                    ["shapes"] = values.Select(v => v.Shape.ToArray()).ToArray(),
                });
                var ms = new double[2];
                for (int m = 0; m < 2; m++)
                {
                    using var opt = new Sgd(new SgdOptions(1e-6, 0.9, 0, 1e-4));
                    var mp = new MixedPrecision(precision, multiTensor: m == 1);
                    for (int i = 0; i < warmup; i++) mp.Step(opt, values, grads, 10);
                    backend.Synchronize();
                    var sw = Stopwatch.StartNew();
                    for (int i = 0; i < steps; i++) mp.Step(opt, values, grads, 10);
                    backend.Synchronize();
                    ms[m] = sw.Elapsed.TotalMilliseconds / steps;
                }
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {arch} | {precision.Name()} | {values.Length} | {elements:N0} | {ms[0]:F2} | {ms[1]:F3} | {ms[0] / ms[1]:F1}x |"));
                Append(json, new Dictionary<string, object>
                {
                    ["mode"] = "optim-step", ["arch"] = arch, ["precision"] = precision.Name(), ["tensors"] = values.Length, ["elements"] = elements,
                    ["per_tensor_ms"] = ms[0], ["multi_tensor_ms"] = ms[1], ["steps"] = steps,
                });
            }
            if (trainSteps > 0) trainRows.Add(TrainSteps(arch, batch, size, warmup, trainSteps, json));
        }
        if (trainRows.Count > 0)
        {
            Console.WriteLine();
            Console.WriteLine("| model (amp) | batch | size | ms/step per-tensor | ms/step multi-tensor | images/s per-tensor | images/s multi-tensor |");
            Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|");
            foreach (var r in trainRows) Console.WriteLine(r);
        }
        return 0;
    }

    private static Trainer NewTrainer(string arch, int batch, int size, TrainPrecision precision, bool multiTensor)
    {
        var options = new TrainOptions
        {
            Architecture = arch, BatchSize = batch, Iterations = int.MaxValue, LearningRate = 0.001, Warmup = 0, Milestones = [int.MaxValue],
            Resize = size, MaxSize = size, FlipProbability = 0, Device = Device.Cuda(0), Precision = precision, MultiTensorOptimizer = multiTensor,
        };
        using var model = Architectures.Get(arch).CreateFor(91);
        using var init = ModelInit.Random(model, 0);
        return Trainer.Create(options, 91, init, "random init");
    }

    private static void Fill(Tensor[] grads, double scale)
    {
        var rng = new Random(7);
        foreach (var g in grads)
        {
            var v = new float[g.Numel];
            for (int i = 0; i < v.Length; i++) v[i] = (float)((rng.NextDouble() * 2 - 1) * scale);
            using var scope = new TensorScope();
            Op.CopyInto(Op.Cast(Op.To(Tensor.FromSpan<float>(v, g.Shape), g.Device), g.DType), g);
        }
    }

    /// <summary>Whole training steps at amp with the per-tensor and the multi-tensor optimiser phase; returns a table row.</summary>
    private static string TrainSteps(string arch, int batch, int size, int warmup, int steps, string? json)
    {
        var samples = GpuTrainBench.RandomSamples(batch, size);
        var msPerStep = new double[2];
        foreach (int m in new[] { 0, 1 })
        {
            using var trainer = NewTrainer(arch, batch, size, TrainPrecision.Amp, multiTensor: m == 1);
            using var collated = TrainingBatch.Collate(samples, trainer.Preprocessor(0));
            for (int i = 0; i < warmup; i++) trainer.Step(collated);
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < steps; i++) trainer.Step(collated);
            msPerStep[m] = sw.Elapsed.TotalMilliseconds / steps;
        }
        Append(json, new Dictionary<string, object>
        {
            ["mode"] = "optim-step-train", ["arch"] = arch, ["batch"] = batch, ["size"] = size, ["precision"] = "amp", ["steps"] = steps,
            ["per_tensor_ms_per_step"] = msPerStep[0], ["multi_tensor_ms_per_step"] = msPerStep[1],
        });
        return string.Create(CultureInfo.InvariantCulture,
            $"| {arch} | {batch} | {size} | {msPerStep[0]:F1} | {msPerStep[1]:F1} | {batch * 1000 / msPerStep[0]:F1} | {batch * 1000 / msPerStep[1]:F1} |");
    }

    private static void Append(string? json, Dictionary<string, object> row)
    {
        if (json is not null) File.AppendAllText(json, JsonSerializer.Serialize(row) + Environment.NewLine);
    }
}
