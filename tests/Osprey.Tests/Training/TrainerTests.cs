using Osprey.Core.IO;
using Osprey.Detection;
using Osprey.Detection.Training.Data;
using Osprey.Detection.Training.Loop;
using Xunit;

namespace Osprey.Tests.Training;

/// <summary>The training loop on a tiny synthetic set (64 px inputs, RetinaNet-R18): loss falls, checkpoints round-trip and
/// resume exactly, an interrupted write leaves the previous checkpoint whole, checkpoints load in <see cref="Detector"/>.</summary>
public sealed class TrainerTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "osprey-trainer-" + Guid.NewGuid().ToString("N"));
    private readonly SyntheticDataset _set;

    public TrainerTests()
    {
        _set = SyntheticShapes.Generate(_dir, new SyntheticShapesOptions(Images: 4, MinSize: 64, MaxSize: 64, MaxObjects: 2, Seed: 3, MinObjectSize: 20));
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private CocoDetectionDataset Data() => new(_set.AnnotationsPath, _set.ImageDirectory, new CocoDatasetOptions(LabelMapping.CategoryId, SkipImagesWithoutBoxes: true));

    private static TrainOptions Options(int iters) => new()
    {
        Architecture = "retinanet_resnet18_fpn", BatchSize = 2, Iterations = iters, LearningRate = 0.01, Warmup = 2, Milestones = [1000],
        Resize = 64, MaxSize = 64, FlipProbability = 0, Seed = 5, Workers = 1,
    };

    private Trainer NewTrainer(TrainOptions o, CocoDetectionDataset data)
    {
        int classes = TrainSetup.DefaultClasses(data);
        using var model = Osprey.Detection.Models.Architectures.Get(o.Architecture).CreateFor(classes);
        using var init = ModelInit.Random(model, 11);
        return Trainer.Create(o, classes, init, "init");
    }

    [Fact]
    public void RepeatedBatchLossFalls()
    {
        var data = Data();
        using var t = NewTrainer(Options(6) with { LearningRate = 0.02, Warmup = 0 }, data);
        var samples = Enumerable.Range(0, 2).Select(data.Load).ToArray();
        var losses = new List<double>();
        for (int i = 0; i < 6; i++)
        {
            using var batch = TrainingBatch.Collate(samples, t.Preprocessor(i));
            losses.Add(t.Step(batch).Loss.Total);
        }
        Assert.All(losses, l => Assert.True(double.IsFinite(l)));
        for (int i = 1; i < losses.Count; i++) Assert.True(losses[i] < losses[i - 1], $"loss {string.Join(", ", losses)}");
        Assert.True(losses[^1] < 0.95 * losses[0], $"loss {string.Join(", ", losses)}");
    }

    [Fact]
    public void ResumeContinuesExactlyAndCheckpointLoadsInDetector()
    {
        var data = Data();
        string ck = Path.Combine(_dir, "model.safetensors");
        using var straight = NewTrainer(Options(4), data);
        var expected = straight.Run(data).Select(r => r.Loss.Total).ToList();

        using (var first = NewTrainer(Options(2), data))
        {
            var a = first.Run(data).Select(r => r.Loss.Total).ToList();
            Assert.Equal(expected.Take(2), a);
            first.Save(ck);
        }
        // a write killed midway leaves only the temporary file; the checkpoint itself is intact
        File.WriteAllText(ck + ".tmp", "partial");
        using var resumed = Trainer.Resume(ck, Options(4));
        Assert.Equal(2, resumed.Iteration);
        var b = resumed.Run(data).Select(r => r.Loss.Total).ToList();
        Assert.Equal(expected.Skip(2), b);
        for (int i = 0; i < straight.Parameters.Count; i++)
            Assert.Equal(straight.Parameters[i].Value.ToArray<float>(), resumed.Parameters[i].Value.ToArray<float>());

        resumed.Save(ck);
        Assert.False(File.Exists(ck + ".tmp"));
        using var detector = Detector.Load("retinanet_resnet18_fpn", ck, new DetectorOptions { Resize = Options(4).EvalResize });
        Assert.NotNull(detector.Detect(data.Load(0).Image));
        var (result, _) = resumed.Evaluate(data);
        Assert.InRange(result.AP, 0, 1);
    }

    [Fact]
    public void BadInputsNameTheProblem()
    {
        var data = Data();
        Assert.Contains("--batch", Assert.Throws<ArgumentException>(() => (Options(4) with { BatchSize = 0 }).Validate()).Message);
        Assert.Contains("--jitter", Assert.Throws<ArgumentException>(() => (Options(4) with { JitterMin = 100, JitterMax = 50 }).Validate()).Message);
        Assert.Contains("RetinaNet", Assert.Throws<ArgumentException>(() => Trainer.Create(Options(4) with { Architecture = "ssd300_resnet50" }, 4, new StateDict(), "x")).Message);
        string ck = Path.Combine(_dir, "c.safetensors");
        using (var t = NewTrainer(Options(1), data)) t.Save(ck);
        Assert.Contains("--arch", Assert.Throws<ArgumentException>(() => Trainer.Resume(ck, Options(4) with { Architecture = "retinanet_resnet34_fpn" })).Message);
        Assert.Contains("--classes", Assert.Throws<ArgumentException>(() => Trainer.Resume(ck, Options(4) with { Classes = 7 })).Message);
    }
}
