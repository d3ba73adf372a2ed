using System.Text.Json;
using Osprey.Cli.Commands;
using Osprey.Detection.Training.Data;
using Osprey.Detection.Training.Loop;
using Osprey.Tests.Support;
using Xunit;

namespace Osprey.Tests.Training;

/// <summary>The loop with every augmentation on (resume stays bit-exact), the augmentation options of `osprey train`, and
/// train.jsonl (one object per iteration; a resumed run keeps the lines up to its checkpoint).</summary>
[Collection(ConsoleCollection.Name)]
public sealed class TrainAugmentLoopTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "osprey-trainaug-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private SyntheticDataset Set() =>
        SyntheticShapes.Generate(_dir, new SyntheticShapesOptions(Images: 4, MinSize: 64, MaxSize: 64, MaxObjects: 2, Seed: 3, MinObjectSize: 20));

    private static TrainOptions Options(int iters) => new()
    {
        Architecture = "retinanet_resnet18_fpn", BatchSize = 2, Iterations = iters, LearningRate = 0.01, Warmup = 2, Milestones = [1000],
        Resize = 64, MaxSize = 80, JitterMin = 48, JitterMax = 80, FlipProbability = 0.5, Crop = true, Rotate90 = true,
        Color = new ColorRanges(0.3, 0.3, 0.3, 0.05), Seed = 5, Workers = 2,
    };

    private static Trainer NewTrainer(TrainOptions o, CocoDetectionDataset data)
    {
        int classes = TrainSetup.DefaultClasses(data);
        using var model = Osprey.Detection.Models.Architectures.Get(o.Architecture).CreateFor(classes);
        using var init = ModelInit.Random(model, 11);
        return Trainer.Create(o, classes, init, "init");
    }

    [Fact]
    public void Resume_with_every_augmentation_on_is_bit_exact()
    {
        var set = Set();
        var data = TrainSetup.Dataset(set.AnnotationsPath, set.ImageDirectory);
        string ck = Path.Combine(_dir, "model.safetensors");
        using var straight = NewTrainer(Options(3), data);
        var expected = straight.Run(data).Select(r => r.Loss.Total).ToList();
        using (var plain = NewTrainer(Options(1) with { JitterMin = 0, JitterMax = 0, Crop = false, Rotate90 = false, FlipProbability = 0, Color = default }, data))
            Assert.NotEqual(expected[0], plain.Run(data).Single().Loss.Total);   // the augmentations change the batch
        using (var first = NewTrainer(Options(2), data))
        {
            Assert.Equal(expected.Take(2), first.Run(data).Select(r => r.Loss.Total));
            first.Save(ck);
        }
        using var resumed = Trainer.Resume(ck, Options(3) with { Workers = 1 });
        Assert.Equal(expected.Skip(2), resumed.Run(data).Select(r => r.Loss.Total));
        for (int i = 0; i < straight.Parameters.Count; i++)
            Assert.Equal(straight.Parameters[i].Value.ToArray<float>(), resumed.Parameters[i].Value.ToArray<float>());
    }

    [Fact]
    public void Losses_and_weights_do_not_depend_on_the_number_of_loader_workers()
    {
        var set = Set();
        var data = TrainSetup.Dataset(set.AnnotationsPath, set.ImageDirectory);
        using var one = NewTrainer(Options(3) with { Workers = 1 }, data);
        using var five = NewTrainer(Options(3) with { Workers = 5 }, data);
        var a = one.Run(data).Select(r => r.Loss.Total).ToList();
        var b = five.Run(data).Select(r => r.Loss.Total).ToList();
        Assert.Equal(3, a.Count);
        Assert.Equal(a, b);
        for (int i = 0; i < one.Parameters.Count; i++)
            Assert.Equal(one.Parameters[i].Value.ToArray<float>(), five.Parameters[i].Value.ToArray<float>());
    }

    [Fact]
    public void Workers_option_is_parsed_defaulted_and_checked()
    {
        var s = new TrainSettings("m.safetensors", "retinanet_resnet18_fpn", "a.json", "img", null, null, 1000, 500, null, null, 2, 10,
            0.01, 100, [60, 80], null, 800, 1333, "fp32", "cpu", null, 0, 500, null);
        Assert.Equal(3, (s with { Workers = 3 }).ToOptions().Workers);
        Assert.Equal(2, s.ToOptions().Workers);                                   // the CPU default: the network uses every core
        Assert.Equal(TrainOptions.DefaultWorkers(Osprey.Core.Tensors.Device.Cuda(0), Environment.ProcessorCount),
            (s with { Device = "cuda" }).ToOptions().Workers);
        Assert.Equal((2, 2, 2, 7, 16), (TrainOptions.DefaultWorkers(Osprey.Core.Tensors.Device.Cpu, 64), TrainOptions.DefaultWorkers(Osprey.Core.Tensors.Device.Cuda(0), 1),
            TrainOptions.DefaultWorkers(Osprey.Core.Tensors.Device.Cuda(0), 2), TrainOptions.DefaultWorkers(Osprey.Core.Tensors.Device.Cuda(0), 8),
            TrainOptions.DefaultWorkers(Osprey.Core.Tensors.Device.Cuda(1), 128)));
        foreach (int bad in new[] { 0, -1, TrainOptions.MaxWorkers + 1 })
            Assert.Contains($"--workers {bad}", Assert.Throws<ArgumentException>(() => (s with { Workers = bad }).ToOptions()).Message);
        string[] cmd = ["train", Path.Combine(_dir, "m.safetensors"), "--arch", "retinanet_resnet18_fpn", "--annotations", "/nonexistent.json", "--images", _dir];
        Assert.Equal(2, Osprey.Cli.Program.Main([.. cmd, "--workers", "0"]));
        Assert.Equal(1, Osprey.Cli.Program.Main([.. cmd, "--workers", "two"]));     // System.CommandLine's parse error
    }

    [Fact]
    public void Command_line_augmentation_options_are_checked()
    {
        var s = new TrainSettings("m.safetensors", "retinanet_resnet18_fpn", "a.json", "img", null, null, 1000, 500, null, null, 2, 10,
            0.01, 100, [60, 80], null, 800, 1333, "fp32", "cpu", null, 0, 500, null);
        var o = (s with { Augment = new TrainAugmentArgs(0.3, true, true, [0.1, 0.2, 0.3, 0.04]) }).ToOptions();
        Assert.Equal((0.3, true, true, new ColorRanges(0.1, 0.2, 0.3, 0.04)), (o.FlipProbability, o.Crop, o.Rotate90, o.Color));
        Assert.Equal((0.5, false, false, default(ColorRanges)), (s.ToOptions().FlipProbability, s.ToOptions().Crop, s.ToOptions().Rotate90, s.ToOptions().Color));
        Assert.Contains("--color takes four", Assert.Throws<ArgumentException>(() => (s with { Augment = new TrainAugmentArgs(Color: [0.1, 0.2, 0.3]) }).ToOptions()).Message);
        Assert.Contains("--color", Assert.Throws<ArgumentException>(() => (s with { Augment = new TrainAugmentArgs(Color: [0.1, 0.2, 0.3, 0.9]) }).ToOptions()).Message);
        Assert.Contains("--flip", Assert.Throws<ArgumentException>(() => (s with { Augment = new TrainAugmentArgs(Flip: -0.1) }).ToOptions()).Message);
        string[] bad = ["train", Path.Combine(_dir, "m.safetensors"), "--arch", "retinanet_resnet18_fpn", "--annotations", "/nonexistent.json", "--images", _dir];
        Assert.Equal(2, Osprey.Cli.Program.Main([.. bad, "--flip", "2"]));
        Assert.Equal(2, Osprey.Cli.Program.Main([.. bad, "--color", "0.1", "0.2"]));
    }

    [Fact]
    public void Json_log_has_one_object_per_iteration_and_resume_keeps_lines_up_to_the_checkpoint()
    {
        var set = Set();
        string ck = Path.Combine(_dir, "out", "model.safetensors");
        string[] Args(int iters) => ["train", ck, "--arch", "retinanet_resnet18_fpn", "--annotations", set.AnnotationsPath, "--images", set.ImageDirectory,
            "--val-annotations", set.AnnotationsPath, "--val-images", set.ImageDirectory, "--val-iters", "2", "--batch", "2", "--iters", iters.ToString(),
            "--warmup", "1", "--milestones", "100", "--resize", "64", "--max-size", "80", "--checkpoint-iters", "2",
            "--jitter", "48", "80", "--crop", "--rotate90", "--flip", "0.3", "--color", "0.2", "0.2", "0.2", "0.02", "--workers", "3"];
        Assert.Equal(0, Osprey.Cli.Program.Main(Args(2)));
        string jsonl = Path.Combine(_dir, "out", "train.jsonl");
        // a run killed after its checkpoint logged iteration 3 and half of iteration 4: the resumed run redoes them
        File.AppendAllText(jsonl, "{\"iteration\":3,\"loss\":9}\n{\"iteration\":4,\"lo");
        Assert.Equal(0, Osprey.Cli.Program.Main(Args(3)));
        var lines = File.ReadAllLines(jsonl);
        Assert.Equal(3, lines.Length);
        var csv = File.ReadAllLines(Path.Combine(_dir, "out", "train.csv")).Skip(1).Select(l => l.Split(',')).ToArray();
        for (int i = 0; i < 3; i++)
        {
            using var doc = JsonDocument.Parse(lines[i]);
            var e = doc.RootElement;
            Assert.Equal(i + 1, e.GetProperty("iteration").GetInt64());
            foreach (string k in new[] { "loss", "classification", "box", "lr", "grad_norm", "images_per_s", "elapsed_s" })
                Assert.True(double.IsFinite(e.GetProperty(k).GetDouble()), $"line {i + 1}: {k}");
            Assert.Equal(e.GetProperty("loss").GetDouble(), e.GetProperty("classification").GetDouble() + e.GetProperty("box").GetDouble(), 1e-9);
            Assert.Equal(double.Parse(csv[i][1], System.Globalization.CultureInfo.InvariantCulture), e.GetProperty("loss").GetDouble(), 1e-7);
            var map = e.GetProperty("map");
            if (i == 0) Assert.Equal(JsonValueKind.Null, map.ValueKind);
            else Assert.InRange(map.GetDouble(), 0, 1);                 // validated at 2 and at the end
        }
    }
}
