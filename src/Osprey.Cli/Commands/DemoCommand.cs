using System.CommandLine;
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

    public static Command Create()
    {
        var output = new Option<string>("--out") { Description = "folder for the data, checkpoint, log, plots and annotated images", DefaultValueFactory = _ => "osprey-demo" };
        var iters = new Option<int>("--iters") { Description = "training iterations", DefaultValueFactory = _ => 600 };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };
        var images = new Option<int>("--images") { Description = "synthetic training images", DefaultValueFactory = _ => 400 };
        var batch = new Option<int>("--batch") { Description = "images per iteration", DefaultValueFactory = _ => 4 };
        var resize = new Option<int>("--resize") { Description = "shorter side of the network input", DefaultValueFactory = _ => 160 };
        var lr = new Option<double>("--lr") { Description = "base learning rate", DefaultValueFactory = _ => 0.01 };
        var seed = new Option<int>("--seed") { Description = "seed of data, initialisation and order", DefaultValueFactory = _ => 0 };
        var cmd = new Command("demo", "Generate a synthetic shapes dataset, train a small RetinaNet on it, evaluate it and draw its detections")
        {
            output, iters, device, images, batch, resize, lr, seed,
        };
        cmd.SetAction(r => Run(r.GetValue(output)!, r.GetValue(iters), r.GetValue(device)!, r.GetValue(images), r.GetValue(batch),
            r.GetValue(resize), r.GetValue(lr), r.GetValue(seed)));
        return cmd;
    }

    public static int Run(string dir, int iters, string device, int images, int batch, int resize, double lr, int seed)
    {
        Trainer trainer;
        CocoDetectionDataset train, val;
        string how;
        try
        {
            if (images < batch) throw new ArgumentException($"--images {images} must be at least --batch {batch}");
            AnsiConsole.MarkupLine($"generating the synthetic shapes set in {Markup.Escape(Path.GetFullPath(dir))} ...");
            var trainSet = SyntheticShapes.Generate(Path.Combine(dir, "data", "train"), new SyntheticShapesOptions(Images: images, Seed: 1000 + seed));
            var valSet = SyntheticShapes.Generate(Path.Combine(dir, "data", "val"), new SyntheticShapesOptions(Images: 60, Seed: 2000 + seed));
            AnsiConsole.MarkupLine($"{trainSet.Images} training images ({trainSet.Objects} objects), {valSet.Images} validation images ({valSet.Objects} objects); " +
                $"classes: {string.Join(", ", SyntheticShapes.ClassNames)}");
            train = TrainSetup.Dataset(trainSet.AnnotationsPath, trainSet.ImageDirectory);
            val = new CocoDetectionDataset(valSet.AnnotationsPath, valSet.ImageDirectory, new CocoDatasetOptions(LabelMapping.CategoryId));
            var settings = new TrainSettings(Path.Combine(dir, "model.safetensors"), "retinanet_resnet18_fpn", trainSet.AnnotationsPath, trainSet.ImageDirectory,
                null, null, Math.Max(1, iters / 4), 60, null, null, batch, iters, lr, Math.Min(100, iters / 5), [iters * 3 / 4], null, resize, resize * 2,
                "fp32", device, null, seed, Math.Max(1, iters / 4), dir);
            var options = settings.ToOptions();
            (trainer, how) = TrainSetup.Start(options, train, settings.Output, null);
        }
        catch (Exception e) when (e is ArgumentException or OspreyException or IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
            return 2;
        }
        using (trainer)
        {
            AnsiConsole.MarkupLine($"[bold]{trainer.Architecture.Name}[/] at {resize} px: {Markup.Escape(how)}; {iters} iterations of batch {batch} on {trainer.Options.Device}");
            try
            {
                string ck = Path.Combine(dir, "model.safetensors");
                var outcome = TrainRunner.Train(trainer, train, val, new RunSpec(ck, dir, Math.Max(1, iters / 4), 60, Math.Max(1, iters / 4)));
                if (outcome.Interrupted) return 130;
                var (result, dets) = trainer.Evaluate(val);
                string drawn = Path.Combine(dir, "detections");
                Directory.CreateDirectory(drawn);
                var names = new Dictionary<int, string>();
                foreach (var c in val.GroundTruth.Categories) names[(int)c.Id] = c.Name;
                for (int i = 0; i < Math.Min(12, dets.Count); i++)
                    InferRunner.Draw(val.Load(i).Image, dets[i].Detections, names, Path.Combine(drawn, Path.GetFileNameWithoutExtension(dets[i].Image.FileName) + ".png"));
                Console.WriteLine(result.SummaryText());
                bool ok = result.AP >= GoalMap;
                AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture,
                    $"[bold]validation mAP@[[.5:.95]] {result.AP:F3}[/] (AP50 {result.Stats[1]:F3}) after {trainer.Iteration} iterations; goal {GoalMap:F1}: {(ok ? "[green]reached[/]" : "[yellow]not reached[/] (train longer: --iters)")}"));
                AnsiConsole.MarkupLine($"written: {Markup.Escape(ck)} (osprey infer --arch retinanet_resnet18_fpn --weights {Markup.Escape(ck)} --resize {resize} ...), " +
                    $"{Markup.Escape(Path.Combine(dir, "train.csv"))}, loss.png, map.png, {Markup.Escape(drawn)}/*.png");
                return 0;
            }
            catch (Exception e) when (e is OspreyException or IOException or InvalidOperationException or NotSupportedException or ArgumentException)
            {
                AnsiConsole.MarkupLine($"[red]error at iteration {trainer.Iteration + 1}:[/] {Markup.Escape(e.Message)}");
                return 1;
            }
        }
    }
}
