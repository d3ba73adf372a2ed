using System.Globalization;
using Osprey.Core.Autograd;
using Osprey.Core.IO;
using Osprey.Core.Tensors;
using Osprey.Detection.Boxes;
using Osprey.Detection.Evaluation;
using Osprey.Detection.Models;
using Osprey.Detection.Training.Data;
using Osprey.Detection.Training.Losses;
using Osprey.Detection.Training.Optim;
using Osprey.Vision.Transforms;

namespace Osprey.Detection.Training.Loop;

/// <summary>One optimiser step's figures: the iteration just completed (1-based), loss parts, learning rate used, and the
/// gradient norm before clipping.</summary>
public readonly record struct TrainStepResult(long Iteration, DetectionLoss Loss, double LearningRate, double GradNorm, int Images);

/// <summary>
/// A RetinaNet training run on any device the ops run on: collated batch -> forward under a <see cref="GradTape"/> watching
/// the (batch-norm-folded, frozen-BN) convolution tensors -> <see cref="HeadLoss"/> -> backward -> global-norm clip ->
/// SGD with the ODTK schedule. Checkpoints (<see cref="TrainCheckpoint"/>) hold weights loadable by <see cref="Detector"/>
/// plus the optimiser state and iteration, so a resumed run continues exactly.
/// </summary>
public sealed class Trainer : IDisposable
{
    private readonly DetectionModel _model;
    private readonly List<Parameter> _params = [];
    private readonly Sgd _optimizer;
    private readonly AnchorGenerator _anchors = AnchorGenerator.RetinaNet();
    private readonly Dictionary<(ImageSize, int), float[]> _anchorCache = [];

    private Trainer(Architecture arch, DetectionModel model, TrainOptions options, long iteration)
    {
        Architecture = arch;
        _model = model;
        Options = options;
        Iteration = iteration;
        Schedule = new LearningRateSchedule(options.LearningRate, options.Warmup, options.Milestones);
        _optimizer = new Sgd(new SgdOptions(options.LearningRate, options.Momentum, 0, options.WeightDecay));
        foreach (var c in model.Parameters.Layers)
        {
            _params.Add(new Parameter(c.Weight!, c.Name + ".weight", ownsValue: false));
            _params.Add(new Parameter(c.Bias!, c.Name + ".bias", ownsValue: false));
        }
    }

    public Architecture Architecture { get; }
    public TrainOptions Options { get; }
    public LearningRateSchedule Schedule { get; }
    public int Classes => _model.Classes;

    /// <summary>Optimiser steps completed.</summary>
    public long Iteration { get; private set; }

    /// <summary>The trained tensors in optimiser order (folded conv weight, bias, per layer).</summary>
    public IReadOnlyList<Parameter> Parameters => _params;

    /// <summary>A new run from <paramref name="weights"/> (e.g. <see cref="ModelInit.Random"/> or a fine-tuning start), for <paramref name="classes"/> classes.</summary>
    public static Trainer Create(TrainOptions options, int classes, StateDict weights, string source)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(weights);
        options.Validate();
        var arch = CheckArchitecture(options.Architecture);
        var model = arch.CreateFor(classes);
        try
        {
            model.Load(weights, source, options.Device, MemoryFormat.Contiguous, DType.Float32);
            return new Trainer(arch, model, options, 0);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Continues the run saved in <paramref name="checkpoint"/>: weights, optimiser state and iteration; the
    /// architecture and classes must match <paramref name="options"/>'.</summary>
    public static Trainer Resume(string checkpoint, TrainOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        using var dict = WeightFile.Load(checkpoint);
        var (arch, classes, iteration, steps) = TrainCheckpoint.ReadHeader(dict, checkpoint);
        if (!string.Equals(arch, options.Architecture, StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"{checkpoint}: a checkpoint of {arch}, but --arch {options.Architecture}");
        if (options.Classes is int k && k != classes)
            throw new ArgumentException($"{checkpoint}: a checkpoint for {classes} classes, but --classes {k}");
        var trainer = Create(options, classes, dict, checkpoint);
        try
        {
            trainer.Iteration = iteration;
            var values = trainer._params.Select(p => p.Value).ToList();
            trainer._optimizer.LoadState(values, steps, TrainCheckpoint.OptimizerBuffers(dict, checkpoint));
            return trainer;
        }
        catch
        {
            trainer.Dispose();
            throw;
        }
    }

    private static Architecture CheckArchitecture(string name)
    {
        var arch = Architectures.Get(name);
        if (arch.Family != DetectorFamily.RetinaNet)
            throw new ArgumentException($"--arch {arch.Name}: training is implemented for RetinaNet architectures only so far (SSD's loss exists, its L2Norm scale is not yet exposed as a parameter)");
        return arch;
    }

    /// <summary>The model's transform for an iteration (<see cref="TrainAugmentation.NetworkResize"/>: --resize, or none after
    /// the per-image jitter; ImageNet normalisation, padding to 32). The same for every iteration.</summary>
    public Preprocessor Preprocessor(long iteration) => new(TrainAugmentation.NetworkResize(Options), Architecture.Normalization, Options.Device);

    /// <summary>One optimiser step on a collated batch.</summary>
    public TrainStepResult Step(TrainingBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var x = batch.Images.Images;
        DetectionLoss loss;
        using (var scope = new TensorScope())
        {
            using var tape = new GradTape(_params);
            using var heads = _model.Forward(x);
            var anchors = Anchors(new ImageSize(x.Shape[2], x.Shape[3]), heads.Grids);
            using var result = HeadLoss.RetinaNet(heads.ClassLogits, heads.BoxRegression, anchors, batch.Targets, RetinaNetLossOptions.Torchvision);
            loss = result.Loss;
            if (!double.IsFinite(loss.Total))
                throw new InvalidOperationException($"training diverged at iteration {Iteration + 1}: loss {loss.Classification} (classification) + {loss.BoxRegression} (box); lower --lr or raise --warmup");
            tape.Backward([(heads.ClassLogits, result.ClassGrad), (heads.BoxRegression, result.BoxGrad)]);
        }
        var grads = new Tensor[_params.Count];
        for (int i = 0; i < grads.Length; i++) grads[i] = _params[i].Grad ?? throw new InvalidOperationException($"no gradient reached {_params[i].Name}");
        double norm;
        double lr = Schedule.Rate(Iteration);
        using (GradTape.NoGrad())
        using (new TensorScope())
        {
            norm = Options.ClipNorm > 0 ? Gradients.ClipByGlobalNorm(grads, Options.ClipNorm) : double.NaN;
            _optimizer.LearningRate = lr;
            var pairs = new ParamGrad[_params.Count];
            for (int i = 0; i < pairs.Length; i++) pairs[i] = new ParamGrad(_params[i].Value, grads[i]);
            _optimizer.Step(pairs);
        }
        foreach (var p in _params) p.ZeroGrad();
        Iteration++;
        return new TrainStepResult(Iteration, loss, lr, norm, batch.Targets.Count);
    }

    private float[] Anchors(ImageSize size, ImageSize[] grids)
    {
        var key = (size, grids.Length);
        if (!_anchorCache.TryGetValue(key, out var a))
        {
            a = _anchors.Generate(size, grids);
            if (_anchorCache.Count > 64) _anchorCache.Clear();
            _anchorCache[key] = a;
        }
        return a;
    }

    /// <summary>Trains from <see cref="Iteration"/> to <see cref="TrainOptions.Iterations"/>, yielding after every step. The batch
    /// order depends only on the seed and the iteration, so a resumed run sees the batches an uninterrupted one would.</summary>
    public IEnumerable<TrainStepResult> Run(CocoDetectionDataset data, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.Count < Options.BatchSize) throw new ArgumentException($"{data.Count} training images, fewer than --batch {Options.BatchSize}");
        var augment = TrainAugmentation.For(Options);
        var loader = new DataLoader<DetectionSample>(data.Count, (i, rng) => Augment.Apply(data.Load(i), augment, rng),
            new LoaderOptions(Options.BatchSize, Options.Workers, Prefetch: 4, Shuffle: true, Seed: Options.Seed, DropLast: true));
        int perEpoch = loader.BatchesPerEpoch;
        while (Iteration < Options.Iterations)
        {
            int epoch = (int)(Iteration / perEpoch);
            long skip = Iteration % perEpoch;
            foreach (var samples in loader.Epoch(epoch, cancellation))
            {
                if (skip > 0) { skip--; continue; }
                TrainStepResult r;
                using (var batch = TrainingBatch.Collate(samples, Preprocessor(Iteration))) r = Step(batch);
                yield return r;
                if (Iteration >= Options.Iterations) yield break;
            }
        }
    }

    /// <summary>The current weights as a host state dict in the reference's names (batch norm at identity, see
    /// <see cref="TrainCheckpoint"/>); with <paramref name="withOptimizer"/>, also the optimiser state and run header.</summary>
    public StateDict ExportWeights(bool withOptimizer = false)
    {
        var dict = TrainCheckpoint.Weights(_model);
        if (!withOptimizer) return dict;
        try
        {
            TrainCheckpoint.AddState(dict, Architecture.Name, Classes, Iteration, _optimizer);
            return dict;
        }
        catch
        {
            dict.Dispose();
            throw;
        }
    }

    /// <summary>Writes the checkpoint atomically (a temporary file in the same folder, then a rename over <paramref name="path"/>).</summary>
    public void Save(string path)
    {
        using var dict = ExportWeights(withOptimizer: true);
        TrainCheckpoint.WriteAtomic(path, dict);
    }

    /// <summary>COCO mAP of the current weights on (the first <paramref name="maxImages"/> images of) a dataset, at
    /// <see cref="TrainOptions.EvalResize"/>, with the architecture's post-processing; returns the detections too.</summary>
    public (CocoEvalResult Result, List<(CocoImage Image, IReadOnlyList<DetectedObject> Detections)> Detections) Evaluate(
        CocoDetectionDataset data, int maxImages = int.MaxValue)
    {
        ArgumentNullException.ThrowIfNull(data);
        using var weights = ExportWeights();
        using var detector = Detector.Create(Architecture.Name, weights, "training run",
            new DetectorOptions { Device = Options.Device, Resize = Options.EvalResize });
        int n = Math.Min(maxImages, data.Count);
        var dets = new List<CocoDetection>();
        var perImage = new List<(CocoImage, IReadOnlyList<DetectedObject>)>(n);
        var images = new List<CocoImage>(n);
        for (int i = 0; i < n; i++)
        {
            var sample = data.Load(i);
            var info = data.ImageAt(i);
            images.Add(info);
            var found = detector.Detect(sample.Image);
            perImage.Add((info, found));
            foreach (var d in found) dets.Add(new CocoDetection(info.Id, d.Label, d.X1, d.Y1, d.Width, d.Height, d.Score));
        }
        var gt = data.GroundTruth;
        if (n < data.Count)
        {
            var ids = images.Select(im => im.Id).ToHashSet();
            gt = new CocoGroundTruth(images, gt.Categories, gt.Annotations.Where(a => ids.Contains(a.ImageId)).ToList());
        }
        dets.RemoveAll(d => !gt.HasCategory(d.CategoryId));
        return (new CocoEvaluator(gt).Evaluate(dets.ToArray()), perImage);
    }

    public static string Describe(TrainStepResult r) => string.Create(CultureInfo.InvariantCulture,
        $"iter {r.Iteration}: loss {r.Loss.Total:F4} (cls {r.Loss.Classification:F4}, box {r.Loss.BoxRegression:F4}), lr {r.LearningRate:G4}");

    public void Dispose()
    {
        foreach (var p in _params) p.Dispose();
        _optimizer.Dispose();
        _model.Dispose();
    }
}
