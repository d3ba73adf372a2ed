using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Osprey.Core;
using Osprey.Core.Tensors;
using Osprey.Detection.Training.Data;
using Osprey.Detection.Training.Loop;
using Spectre.Console;

namespace Osprey.Cli.Commands;

/// <summary>`osprey demo`: synthetic shapes -> train a small RetinaNet -> evaluate -> annotated images and plots. No downloads.</summary>
public static class DemoCommand
{
    /// <summary>The issue's goal for the demo's validation mAP@[.5:.95].</summary>
    public const double GoalMap = 0.5;
    private const int DrawScale = 3;

    public static Command Create()
    {
        var output = new Option<string>("--out") { Description = "folder for the data, checkpoint, log, plots and annotated images", DefaultValueFactory = _ => "osprey-demo" };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N (each has its own defaults below)", DefaultValueFactory = _ => "cpu" };
        var arch = new Option<string?>("--arch") { Description = $"RetinaNet architecture (cpu: {DemoPreset.Cpu.Architecture}, cuda: {DemoPreset.Cuda.Architecture})" };
        var iters = new Option<int?>("--iters") { Description = $"training iterations (cpu: {DemoPreset.Cpu.Iterations}, cuda: {DemoPreset.Cuda.Iterations})" };
        var images = new Option<int?>("--images") { Description = $"synthetic training images (default {DemoPreset.Cpu.Images})" };
        var batch = new Option<int?>("--batch") { Description = $"images per iteration (cpu: {DemoPreset.Cpu.Batch}, cuda: {DemoPreset.Cuda.Batch})" };
        var resize = new Option<int?>("--resize") { Description = $"shorter side of the network input (default {DemoPreset.Cpu.Resize})" };
        var optimizer = new Option<string?>("--optimizer") { Description = $"sgd or adamw (cpu: {DemoPreset.Cpu.Optimizer}, cuda: {DemoPreset.Cuda.Optimizer})" };
        var lr = new Option<double?>("--lr") { Description = $"base learning rate (cpu: {DemoPreset.Cpu.LearningRate}, cuda: {DemoPreset.Cuda.LearningRate})" };
        var seed = new Option<int>("--seed") { Description = "seed of data, initialisation and order", DefaultValueFactory = _ => 0 };
        var cmd = new Command("demo", "Generate a synthetic shapes dataset, train a small RetinaNet on it, evaluate it and draw its detections")
        {
            output, device, arch, iters, images, batch, resize, optimizer, lr, seed,
        };
        cmd.SetAction(r =>
        {
            string dev = r.GetValue(device)!;
            DemoPreset p;
            try
            {
                p = DemoPreset.For(Device.Parse(dev));
            }
            catch (FormatException e)
            {
                AnsiConsole.MarkupLine($"[red]error:[/] --device {Markup.Escape(dev)}: {Markup.Escape(e.Message)}");
                return 2;
            }
            p = p with
            {
                Architecture = r.GetValue(arch) ?? p.Architecture, Iterations = r.GetValue(iters) ?? p.Iterations, Images = r.GetValue(images) ?? p.Images,
                Batch = r.GetValue(batch) ?? p.Batch, Resize = r.GetValue(resize) ?? p.Resize, Optimizer = r.GetValue(optimizer) ?? p.Optimizer,
                LearningRate = r.GetValue(lr) ?? p.LearningRate,
            };
            return Run(r.GetValue(output)!, dev, p, r.GetValue(seed));
        });
        return cmd;
    }

    /// <summary>Runs the demo with the settings of <paramref name="preset"/> (see <see cref="DemoPreset.For"/> for the defaults).</summary>
    public static int Run(string dir, string device, DemoPreset preset, int seed, int valImages = 60)
    {
        ArgumentNullException.ThrowIfNull(preset);
        Trainer trainer;
        CocoDetectionDataset train, val;
        string how;
        int iters = preset.Iterations, batch = preset.Batch, resize = preset.Resize;
        var clock = Stopwatch.StartNew();
        var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        try
        {
            if (preset.Images < batch) throw new ArgumentException($"--images {preset.Images} must be at least --batch {batch}");
            if (preset.Optimizer is not ("sgd" or "adamw")) throw new ArgumentException($"--optimizer {preset.Optimizer}: expected sgd or adamw");
            AnsiConsole.MarkupLine($"generating the synthetic shapes set in {Markup.Escape(Path.GetFullPath(dir))} ...");
            var trainSet = SyntheticShapes.Generate(Path.Combine(dir, "data", "train"), preset.Data(preset.Images, 1000 + seed));
            var valSet = SyntheticShapes.Generate(Path.Combine(dir, "data", "val"), preset.Data(valImages, 2000 + seed));
            AnsiConsole.MarkupLine($"{trainSet.Images} training images ({trainSet.Objects} objects), {valSet.Images} validation images ({valSet.Objects} objects); " +
                $"classes: {string.Join(", ", SyntheticShapes.ClassNames)}");
            train = TrainSetup.Dataset(trainSet.AnnotationsPath, trainSet.ImageDirectory);
            val = new CocoDetectionDataset(valSet.AnnotationsPath, valSet.ImageDirectory, new CocoDatasetOptions(LabelMapping.CategoryId));
            var settings = new TrainSettings(Path.Combine(dir, "model.safetensors"), preset.Architecture, trainSet.AnnotationsPath, trainSet.ImageDirectory,
                null, null, Math.Max(1, iters / 4), valImages, null, null, batch, iters, preset.LearningRate, DemoPreset.WarmupFor(iters), [Math.Max(1, iters * 3 / 4)],
                null, resize, resize * 2, "fp32", device, null, seed, Math.Max(1, iters / 4), dir);
            var options = settings.ToOptions() with { Optimizer = preset.Optimizer };
            (trainer, how) = TrainSetup.Start(options, train, settings.Output, null);
        }
        catch (Exception e) when (e is ArgumentException or OspreyException or IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
            return 2;
        }
        using (trainer)
        {
            AnsiConsole.MarkupLine($"[bold]{trainer.Architecture.Name}[/] at {resize} px: {Markup.Escape(how)}; {iters} iterations of batch {batch} on {trainer.Options.Device}, " +
                string.Create(CultureInfo.InvariantCulture, $"{preset.Optimizer} lr {preset.LearningRate}"));
            try
            {
                string ck = Path.Combine(dir, "model.safetensors");
                var outcome = TrainRunner.Train(trainer, train, val, new RunSpec(ck, dir, Math.Max(1, iters / 4), valImages, Math.Max(1, iters / 4)));
                if (outcome.Interrupted) return 130;
                var (result, dets) = trainer.Evaluate(val);
                string drawn = Path.Combine(dir, "detections");
                Directory.CreateDirectory(drawn);
                var names = new Dictionary<int, string>();
                foreach (var c in val.GroundTruth.Categories) names[(int)c.Id] = c.Name;
                for (int i = 0; i < Math.Min(12, dets.Count); i++)
                {
                    // the demo's images are about 128 px: drawn 3x larger so the labels stay readable
                    var image = val.Load(i).Image;
                    var large = ImageResize.Bilinear(image, image.Width * DrawScale, image.Height * DrawScale);
                    var scaled = dets[i].Detections.Select(d => d with { X1 = d.X1 * DrawScale, Y1 = d.Y1 * DrawScale, X2 = d.X2 * DrawScale, Y2 = d.Y2 * DrawScale }).ToList();
                    InferRunner.Draw(large, scaled, names, Path.Combine(drawn, Path.GetFileNameWithoutExtension(dets[i].Image.FileName) + ".png"));
                }
                Console.WriteLine(result.SummaryText());
                bool ok = result.AP >= GoalMap;
                AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture,
                    $"[bold]validation mAP@[[.5:.95]] {result.AP:F3}[/] (AP50 {result.Stats[1]:F3}) after {trainer.Iteration} iterations; goal {GoalMap:F1}: {(ok ? "[green]reached[/]" : "[yellow]not reached[/] (train longer: --iters)")}"));
                AnsiConsole.MarkupLine($"written: {Markup.Escape(ck)} (osprey infer --arch {trainer.Architecture.Name} --weights {Markup.Escape(ck)} --resize {resize} ...), " +
                    $"{Markup.Escape(Path.Combine(dir, "train.csv"))}, loss.png, map.png, {Markup.Escape(drawn)}/*.png");
                double cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds;
                AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture,
                    $"demo time: {clock.Elapsed.TotalSeconds:F0} s wall, {cpu:F0} s CPU on {Environment.ProcessorCount} cores (load average now {LoadAverage()})"));
                return 0;
            }
            catch (Exception e) when (e is OspreyException or IOException or InvalidOperationException or NotSupportedException or ArgumentException)
            {
                AnsiConsole.MarkupLine($"[red]error at iteration {trainer.Iteration + 1}:[/] {Markup.Escape(e.Message)}");
                return 1;
            }
        }
    }

    private static string LoadAverage()
    {
        try
        {
            return File.ReadAllText("/proc/loadavg").Split(' ')[0];
        }
        catch (IOException)
        {
            return "unknown";
        }
        catch (UnauthorizedAccessException)
        {
            return "unknown";
        }
    }
}
