using Osprey.Cli.Commands;
using Osprey.Detection.Training.Loop;
using Osprey.Tests.Support;
using Xunit;

namespace Osprey.Tests.Training;

/// <summary>`osprey demo` end to end with tiny settings (the CPU preset's data, architecture and optimiser; 2 iterations of
/// batch 2 on 4 images, 3 validation images): its outputs, resuming, the checkpoint in `osprey infer`, bad options, presets.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class DemoCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("osprey-demo-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    [Fact]
    public void RunsEndToEndWritesItsOutputsAndResumes()
    {
        var preset = DemoPreset.Cpu with { Iterations = 2, Batch = 2, Images = 4 };
        Assert.Equal(0, DemoCommand.Run(_dir, "cpu", preset, seed: 0, valImages: 3));
        string ck = Path.Combine(_dir, "model.safetensors");
        Assert.True(File.Exists(ck));
        foreach (string f in new[] { "train.csv", "loss.png", "map.png", "data/train/annotations.json", "data/val/annotations.json" })
            Assert.True(File.Exists(Path.Combine(_dir, f)), f);
        Assert.Equal(4, Directory.GetFiles(Path.Combine(_dir, "data", "train", "images"), "*.png").Length);
        var drawn = Directory.GetFiles(Path.Combine(_dir, "detections"), "*.png");
        Assert.Equal(3, drawn.Length);
        Assert.All(drawn, f => Assert.True(new FileInfo(f).Length > 100, f));
        var rows = File.ReadAllLines(Path.Combine(_dir, "train.csv"));
        Assert.Equal(["1", "2"], rows.Skip(1).Select(r => r.Split(',')[0]));

        // the same command with more iterations resumes from the checkpoint
        Assert.Equal(0, DemoCommand.Run(_dir, "cpu", preset with { Iterations = 3 }, seed: 0, valImages: 3));
        rows = File.ReadAllLines(Path.Combine(_dir, "train.csv"));
        Assert.Equal(["1", "2", "3"], rows.Skip(1).Select(r => r.Split(',')[0]));

        // the checkpoint holds AdamW's state: resuming it with SGD is refused, not silently started fresh
        var sgd = new TrainOptions { Architecture = preset.Architecture, BatchSize = 2, Iterations = 5, Resize = 128, MaxSize = 256, Optimizer = "sgd" };
        var e = Assert.Throws<ArgumentException>(() => Trainer.Resume(ck, sgd).Dispose());
        Assert.Contains("exp_avg", e.Message, StringComparison.Ordinal);

        string val = Path.Combine(_dir, "data", "val");
        Assert.Equal(0, Osprey.Cli.Program.Main(["infer", "--arch", preset.Architecture, "--weights", ck, "--images", Path.Combine(val, "images"),
            "--output", Path.Combine(_dir, "r.json"), "--annotations", Path.Combine(val, "annotations.json"), "--resize", "128", "--max-size", "256"]));
    }

    [Fact]
    public void BadOptionsFailWithoutTraining()
    {
        Assert.Equal(2, Osprey.Cli.Program.Main(["demo", "--out", _dir, "--optimizer", "rmsprop"]));
        Assert.Equal(2, Osprey.Cli.Program.Main(["demo", "--out", _dir, "--images", "1", "--batch", "2"]));
        Assert.Equal(2, Osprey.Cli.Program.Main(["demo", "--out", _dir, "--device", "tpu"]));
        Assert.Equal(2, Osprey.Cli.Program.Main(["demo", "--out", _dir, "--arch", "retinanet_resnet9_fpn", "--iters", "1", "--images", "2", "--batch", "1"])); // unknown architecture
        Assert.False(File.Exists(Path.Combine(_dir, "model.safetensors")));
    }

    [Fact]
    public void PresetsPerDevice()
    {
        Assert.Equal("retinanet_tiny_fpn", DemoPreset.For(Osprey.Core.Tensors.Device.Cpu).Architecture);
        var cuda = DemoPreset.For(Osprey.Core.Tensors.Device.Parse("cuda:0"));
        Assert.Equal(("retinanet_resnet18_fpn", 1500, 16, 128, "sgd", 0.02), (cuda.Architecture, cuda.Iterations, cuda.Batch, cuda.Resize, cuda.Optimizer, cuda.LearningRate));
        Assert.Equal(20, DemoPreset.WarmupFor(100));
        Assert.Equal(100, DemoPreset.WarmupFor(10_000));
        var data = DemoPreset.Cpu.Data(7, 3);
        Assert.Equal((7, 128, 160, 3), (data.Images, data.MinSize, data.MaxSize, data.Seed));
    }
}
