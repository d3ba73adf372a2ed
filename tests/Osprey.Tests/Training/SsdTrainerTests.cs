using Osprey.Core.IO;
using Osprey.Core.Tensors;
using Osprey.Detection;
using Osprey.Detection.Models;
using Osprey.Detection.Training.Data;
using Osprey.Detection.Training.Loop;
using Xunit;

namespace Osprey.Tests.Training;

/// <summary>ssd300_vgg16 in the training loop on the CPU (tiny synthetic set, resized to SSD's 300x300, batch 1): the loss
/// falls on a repeated batch, 1 + 1 resumed iterations equal 2 straight ones bit for bit (the L2Norm scale included), the
/// checkpoint carries backbone.scale_weight and loads in <see cref="Detector"/>, SSD-specific option errors.</summary>
public sealed class SsdTrainerTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "osprey-ssd-trainer-" + Guid.NewGuid().ToString("N"));
    private readonly SyntheticDataset _set;

    public SsdTrainerTests()
    {
        _set = SyntheticShapes.Generate(_dir, new SyntheticShapesOptions(Images: 2, MinSize: 64, MaxSize: 64, MaxObjects: 2, Seed: 4, MinObjectSize: 20));
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    internal static CocoDetectionDataset Data(SyntheticDataset set) =>
        new(set.AnnotationsPath, set.ImageDirectory, new CocoDatasetOptions(LabelMapping.CategoryId, SkipImagesWithoutBoxes: true));

    internal static TrainOptions Options(int iters, Device device) => new()
    {
        Architecture = "ssd300_vgg16", BatchSize = 1, Iterations = iters, LearningRate = 0.002, Warmup = 0, Milestones = [1000],
        FlipProbability = 0, Seed = 5, Workers = 1, Device = device,
    };

    internal static Trainer NewTrainer(TrainOptions o, CocoDetectionDataset data)
    {
        int classes = TrainSetup.DefaultClasses(data);
        using var model = Architectures.Get(o.Architecture).CreateFor(classes);
        using var init = ModelInit.Random(model, 11);
        Assert.All(init["backbone.scale_weight"].ToArray<float>(), v => Assert.Equal(20f, v));
        return Trainer.Create(o, classes, init, "init");
    }

    [Fact]
    public void RepeatedBatchLossFalls()
    {
        var data = Data(_set);
        using var t = NewTrainer(Options(3, Device.Cpu), data);
        using (var b = t.Preprocessor(0).Batch([data.Load(0).Image])) Assert.Equal(new Shape(1, 3, 300, 300), b.Images.Shape);
        var samples = new[] { data.Load(0) };
        var losses = new List<double>();
        for (int i = 0; i < 3; i++)
        {
            using var batch = TrainingBatch.Collate(samples, t.Preprocessor(i));
            losses.Add(t.Step(batch).Loss.Total);
        }
        Assert.All(losses, l => Assert.True(double.IsFinite(l)));
        for (int i = 1; i < losses.Count; i++) Assert.True(losses[i] < losses[i - 1], $"loss {string.Join(", ", losses)}");
    }

    [Fact]
    public void ResumeContinuesExactlyAndCheckpointLoadsInDetector()
    {
        var data = Data(_set);
        string ck = Path.Combine(_dir, "ssd.safetensors");
        using var straight = NewTrainer(Options(2, Device.Cpu), data);
        var expected = straight.Run(data).Select(r => r.Loss.Total).ToList();
        using (var first = NewTrainer(Options(1, Device.Cpu), data))
        {
            Assert.Equal(expected.Take(1), first.Run(data).Select(r => r.Loss.Total));
            first.Save(ck);
        }
        using var resumed = Trainer.Resume(ck, Options(2, Device.Cpu));
        Assert.Equal(expected.Skip(1), resumed.Run(data).Select(r => r.Loss.Total));
        Assert.Equal(straight.Parameters.Count, resumed.Parameters.Count);
        for (int i = 0; i < straight.Parameters.Count; i++)
            Assert.Equal(straight.Parameters[i].Value.ToArray<float>(), resumed.Parameters[i].Value.ToArray<float>());
        // the L2Norm scale is trained: it left its init of 20
        var scale = straight.Parameters[^1];
        Assert.Equal("backbone.scale_weight", scale.Name);
        Assert.Contains(scale.Value.ToArray<float>(), v => v != 20f);

        resumed.Save(ck);
        using (var dict = WeightFile.Load(ck))
        {
            Assert.Equal(new Shape(512), dict["backbone.scale_weight"].Shape);
            Assert.Equal(scale.Value.ToArray<float>(), dict["backbone.scale_weight"].ToArray<float>());
        }
        using var detector = Detector.Load("ssd300_vgg16", ck, new DetectorOptions());
        Assert.NotNull(detector.Detect(data.Load(0).Image));
    }

    [Fact]
    public void SsdOptionErrorsNameTheProblem()
    {
        var data = Data(_set);
        int classes = TrainSetup.DefaultClasses(data);
        using var model = Architectures.Get("ssd300_vgg16").CreateFor(classes);
        using var init = ModelInit.Random(model, 1);
        Assert.Contains("--jitter", Assert.Throws<ArgumentException>(() =>
            Trainer.Create(Options(1, Device.Cpu) with { JitterMin = 200, JitterMax = 400 }, classes, init, "init")).Message);
        Assert.Contains("RetinaNet", Assert.Throws<ArgumentException>(() =>
            Trainer.Create(Options(1, Device.Cpu) with { Architecture = "ssd300_resnet50" }, 81, new StateDict(), "x")).Message);
    }
}
