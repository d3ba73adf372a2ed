using Osprey.Cli.Commands;
using Osprey.Detection.Training.Data;
using Osprey.Detection.Training.Loop;
using Osprey.Tests.Support;
using Xunit;

namespace Osprey.Tests.Training;

/// <summary>`osprey train` end to end on 4 synthetic 64 px images (train, resume, infer with the checkpoint) and its argument errors.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class TrainCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "osprey-traincmd-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private static TrainSettings Settings() => new("m.safetensors", "retinanet_resnet18_fpn", "a.json", "img", null, null, 1000, 500, null, null, 2, 10,
        0.01, 100, [60, 80], null, 800, 1333, "fp32", "cpu", null, 0, 500, null);

    [Theory]
    [InlineData("amp", "needs --device cuda")]
    [InlineData("bf16", "needs --device cuda")]
    [InlineData("fp64", "expected fp32, amp or bf16")]
    public void PrecisionErrorsAreClear(string precision, string message) =>
        Assert.Contains(message, Assert.Throws<ArgumentException>(() => (Settings() with { Precision = precision }).ToOptions()).Message);

    [Theory]
    [InlineData("amp", TrainPrecision.Amp)]
    [InlineData("bf16", TrainPrecision.Bf16)]
    [InlineData("fp32", TrainPrecision.Fp32)]
    public void PrecisionParsesOnCuda(string precision, TrainPrecision expected) =>
        Assert.Equal(expected, (Settings() with { Precision = precision, Device = "cuda" }).ToOptions().Precision);

    [Fact]
    public void BadArgumentsNameTheOption()
    {
        Assert.Contains("--devices", Assert.Throws<ArgumentException>(() => (Settings() with { Devices = "all" }).ToOptions()).Message);
        Assert.Contains("--device", Assert.Throws<ArgumentException>(() => (Settings() with { Device = "tpu" }).ToOptions()).Message);
        Assert.Contains("--jitter", Assert.Throws<ArgumentException>(() => (Settings() with { Jitter = [640] }).ToOptions()).Message);
        Assert.Contains("--val-images", Assert.Throws<ArgumentException>(() => (Settings() with { ValAnnotations = "v.json" }).ToOptions()).Message);
        Assert.Contains("--lr", Assert.Throws<ArgumentException>(() => (Settings() with { Lr = -1 }).ToOptions()).Message);
        Assert.Contains("--max-size", Assert.Throws<ArgumentException>(() => (Settings() with { Resize = 900, MaxSize = 800 }).ToOptions()).Message);
        Assert.Contains("--fine-tune", Assert.Throws<ArgumentException>(() => (Settings() with { FineTune = "/nonexistent.pth" }).ToOptions()).Message);
        Assert.Equal(2, Osprey.Cli.Program.Main(["train", Path.Combine(_dir, "m.safetensors"), "--arch", "ssd300_vgg16", "--annotations", "/nonexistent.json", "--images", _dir]));
    }

    [Fact]
    public void TrainsResumesAndTheCheckpointRunsInInfer()
    {
        var set = SyntheticShapes.Generate(_dir, new SyntheticShapesOptions(Images: 4, MinSize: 64, MaxSize: 64, MaxObjects: 2, Seed: 3, MinObjectSize: 20));
        string ck = Path.Combine(_dir, "out", "model.safetensors");
        string[] Args(int iters) => ["train", ck, "--arch", "retinanet_resnet18_fpn", "--annotations", set.AnnotationsPath, "--images", set.ImageDirectory,
            "--val-annotations", set.AnnotationsPath, "--val-images", set.ImageDirectory, "--val-iters", "2", "--batch", "2", "--iters", iters.ToString(),
            "--warmup", "1", "--milestones", "100", "--resize", "64", "--max-size", "64", "--checkpoint-iters", "1"];
        Assert.Equal(0, Osprey.Cli.Program.Main(Args(2)));
        Assert.True(File.Exists(ck));
        Assert.True(File.Exists(Path.Combine(_dir, "out", "loss.png")));
        Assert.True(File.Exists(Path.Combine(_dir, "out", "map.png")));
        Assert.Equal(0, Osprey.Cli.Program.Main(Args(3)));
        var rows = File.ReadAllLines(Path.Combine(_dir, "out", "train.csv"));
        Assert.Equal(["1", "2", "3"], rows.Skip(1).Select(r => r.Split(',')[0]));
        Assert.NotEqual("", rows[2].Split(',')[8]); // validation mAP at iteration 2
        Assert.Equal(0, Osprey.Cli.Program.Main(["infer", "--arch", "retinanet_resnet18_fpn", "--weights", ck, "--images", set.ImageDirectory,
            "--output", Path.Combine(_dir, "r.json"), "--annotations", set.AnnotationsPath, "--resize", "64", "--max-size", "64"]));
    }
}
