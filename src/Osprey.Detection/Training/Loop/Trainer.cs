using System.Globalization;
using Osprey.Core.Autograd;
using Osprey.Core.IO;
using Osprey.Core.Ops;
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
/// gradient norm before clipping. <paramref name="Skipped"/>: amp found inf/NaN gradients, so the optimiser did not step.</summary>
public readonly record struct TrainStepResult(long Iteration, DetectionLoss Loss, double LearningRate, double GradNorm, int Images, bool Skipped = false);

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
    private readonly Optimizer _optimizer;
    private readonly AnchorGenerator _anchors;
    private readonly Dictionary<(ImageSize, int), float[]> _anchorCache = [];
    private readonly Dictionary<(ImageSize, int), Tensor> _deviceAnchors = [];
    private readonly MixedPrecision _precision;
    private readonly SsdTraining? _ssd;
    private readonly FlatGradients _flatGrads;

    private Trainer(Architecture arch, DetectionModel model, TrainOptions options, long iteration)
    {
        Architecture = arch;
        _anchors = arch.Anchors();
        _model = model;
        Options = options;
        Iteration = iteration;
        Schedule = new LearningRateSchedule(options.LearningRate, options.Warmup, options.Milestones);
        _optimizer = options.CreateOptimizer();
        _precision = new MixedPrecision(options.Precision, multiTensor: options.MultiTensorOptimizer);
        if (arch.Family == DetectorFamily.Ssd) _ssd = new SsdTraining();
        foreach (var (name, value) in ModelTensors(model)) _params.Add(new Parameter(value, name, ownsValue: false));
        _flatGrads = new FlatGradients(_params);
    }

    /// <summary>The trained tensors in optimiser order: folded conv weight, bias per layer, then the extra parameters.</summary>
    private static IEnumerable<(string Name, Tensor Value)> ModelTensors(DetectionModel model)
    {
        foreach (var c in model.Parameters.Layers)
        {
            yield return (c.Name + ".weight", c.Weight!);
            yield return (c.Name + ".bias", c.Bias!);
        }
        foreach (var e in model.ExtraParameters) yield return e;
    }

    /// <summary>The mixed-precision state (the loss scaler under amp).</summary>
    public MixedPrecision Precision => _precision;

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
        return Build(options, classes, weights, source, 0, null);
    }

    /// <summary>The model in the run's precision (16-bit: channels-last, as torch.amp runs convolutions best) and, under
    /// mixed precision, the optimiser's FP32 masters taken from the float32 weights themselves (not from their 16-bit rounding),
    /// so a fresh amp run starts from the exact init and a resumed one from the checkpoint's masters.</summary>
    private static Trainer Build(TrainOptions options, int classes, StateDict weights, string source, long steps,
        IEnumerable<(int Index, string Name, Tensor Value)>? buffers)
    {
        var arch = CheckArchitecture(options.Architecture);
        if (arch.Family == DetectorFamily.Ssd) SsdTraining.Check(options);
        var dtype = options.Precision.ComputeType();
        var model = arch.CreateFor(classes);
        Trainer trainer;
        try
        {
            model.Load(weights, source, options.Device, dtype == DType.Float32 ? MemoryFormat.Contiguous : MemoryFormat.ChannelsLast, dtype);
            trainer = new Trainer(arch, model, options, 0);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        try
        {
            if (dtype == DType.Float32 && buffers is null) return trainer;
            var values = trainer._params.Select(p => p.Value).ToList();
            if (dtype == DType.Float32)
            {
                trainer._optimizer.LoadState(values, steps, buffers!);
                return trainer;
            }
            using var model32 = arch.CreateFor(classes);
            model32.Load(weights, source, options.Device, MemoryFormat.Contiguous, DType.Float32);
            var masters = ModelTensors(model32).Select((e, i) => values[i].DType == DType.Float32 ? null : e.Value).ToList();
            trainer._optimizer.LoadState(values, steps, buffers ?? [], masters);
            return trainer;
        }
        catch
        {
            trainer.Dispose();
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
        return FromState(dict, checkpoint, options);
    }

    /// <summary>A trainer from a checkpoint's tensors (weights, optimiser state, header).</summary>
    private static Trainer FromState(StateDict dict, string checkpoint, TrainOptions options)
    {
        var (arch, classes, iteration, steps) = TrainCheckpoint.ReadHeader(dict, checkpoint);
        if (!string.Equals(arch, options.Architecture, StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"{checkpoint}: a checkpoint of {arch}, but --arch {options.Architecture}");
        if (options.Classes is int k && k != classes)
            throw new ArgumentException($"{checkpoint}: a checkpoint for {classes} classes, but --classes {k}");
        var trainer = Build(options, classes, dict, checkpoint, steps, TrainCheckpoint.OptimizerBuffers(dict, checkpoint));
        try
        {
            trainer.Iteration = iteration;
            if (trainer._precision.Scaler is { } scaler)
                TrainCheckpoint.RestoreScaler(dict, checkpoint, scaler);
            return trainer;
        }
        catch
        {
            trainer.Dispose();
            throw;
        }
    }

    /// <summary>A copy of this trainer (weights, optimiser state, iteration) on <paramref name="device"/>: a data-parallel rank.
    /// The weights travel through the checkpoint form, which round-trips bit for bit.</summary>
    internal Trainer Replica(Device device)
    {
        using var dict = ExportWeights(withOptimizer: true);
        return FromState(dict, $"replica of the run on {Options.Device}", Options with { Device = device });
    }

    /// <summary>Called on the gradients after backward and before clipping (data parallel: the all-reduce).</summary>
    internal Action<IReadOnlyList<Tensor>>? GradientHook { get; set; }

    /// <summary>The data-parallel group when <see cref="EnableDataParallel"/> was called (this trainer is its rank 0).</summary>
    public DataParallel? Parallel { get; private set; }

    /// <summary>Trains on several devices from now on: replicas of this trainer on <paramref name="devices"/>[1..] (devices[0]
    /// must be this trainer's device); <see cref="TrainOptions.BatchSize"/> is the global batch, split evenly. With
    /// <paramref name="nodes"/>, these devices are this node's share of a multi-node run. See <see cref="DataParallel"/>.</summary>
    public void EnableDataParallel(IReadOnlyList<Device> devices, MultiNodeOptions? nodes = null)
    {
        if (Parallel is not null) throw new InvalidOperationException("data parallel training is already enabled");
        Parallel = DataParallel.Create(this, devices, nodes);
    }

    private static Architecture CheckArchitecture(string name)
    {
        var arch = Architectures.Get(name);
        if (arch.Family is not (DetectorFamily.RetinaNet or DetectorFamily.Ssd))
            throw new ArgumentException($"--arch {arch.Name}: training is implemented for torchvision's RetinaNet architectures and ssd300_vgg16 so far");
        return arch;
    }

    /// <summary>The model's transform for an iteration (<see cref="TrainAugmentation.NetworkResize"/>: --resize, or none after
    /// the per-image jitter; ImageNet normalisation, padding to 32). The same for every iteration.</summary>
    public Preprocessor Preprocessor(long iteration) => _ssd is not null ? SsdTraining.Preprocessor(Architecture, Options.Device) :
        new(TrainAugmentation.NetworkResize(Options), Architecture.Normalization, Options.Device);

    /// <summary>Step profiling (`Osprey.Bench gpu-train --profile`): called at the end of each phase of <see cref="Step"/> with its
    /// name (forward, loss.*, backward, optimizer, zero_grad); a profiler synchronises the device there and takes the time.</summary>
    internal Action<string>? PhaseMark { get; set; }

    /// <summary>One optimiser step on a collated batch.</summary>
    public TrainStepResult Step(TrainingBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var x = batch.Images.Images;
        DetectionLoss loss;
        bool nonFinite = false;
        double lr = Schedule.Rate(Iteration);
        using (var scope = new TensorScope())
        {
            using var tape = new GradTape(_params);
            var input = x.DType == _model.DType ? x : Op.Cast(x, _model.DType);
            using var heads = _model.Forward(input);
            PhaseMark?.Invoke("forward");
            var size = new ImageSize(x.Shape[2], x.Shape[3]);
            using var result = _ssd is not null ? _ssd.Loss(heads, size, batch.Targets, _precision.LossScale, PhaseMark) : RetinaNetLoss(heads, size, batch.Targets);
            // the backward is queued before the loss is read: on the GPU that read (the step's one wait for the device, a
            // 16-byte download) then overlaps the backward instead of stalling between forward and backward
            tape.Backward([(heads.ClassLogits, result.ClassGrad), (heads.BoxRegression, result.BoxGrad)]);
            PhaseMark?.Invoke("backward");
            loss = result.Loss;
            if (!double.IsFinite(loss.Total))
            {
                if (_precision.Scaler is null)
                    throw new InvalidOperationException($"training diverged at iteration {Iteration + 1}: loss {loss.Classification} (classification) + {loss.BoxRegression} (box); lower --lr or raise --warmup");
                if (GradientHook is null)
                {
                    // float16 overflowed in the forward: no usable gradients; skip and back off as torch's scaler would
                    foreach (var p in _params) p.ZeroGrad();
                    _precision.SkipNonFinite();
                    Iteration++;
                    return new TrainStepResult(Iteration, loss, lr, double.NaN, batch.Targets.Count, Skipped: true);
                }
                // data parallel: the other ranks wait in the all-reduce for this rank's gradients; send NaN ones (whatever the
                // backward gave), so that every rank finds the reduced gradients non-finite and skips this step with the same
                // scale back-off
                nonFinite = true;
            }
        }
        var grads = new Tensor[_params.Count];
        using (TensorScope.Untracked())
            for (int i = 0; i < grads.Length; i++)
                grads[i] = nonFinite ? Tensor.Full(_params[i].Value.Shape, double.NaN, _params[i].Value.DType, _params[i].Value.Device)
                    : _params[i].Grad ?? throw new InvalidOperationException($"no gradient reached {_params[i].Name}");
        PrecisionStep step;
        try
        {
            GradientHook?.Invoke(grads);
            using (GradTape.NoGrad())
            {
                _optimizer.LearningRate = lr;
                var values = new Tensor[_params.Count];
                for (int i = 0; i < values.Length; i++) values[i] = _params[i].Value;
                step = _precision.Step(_optimizer, values, grads, Options.ClipNorm);
            }
        }
        finally
        {
            if (nonFinite) foreach (var g in grads) g.Dispose();
        }
        PhaseMark?.Invoke("optimizer");
        foreach (var p in _params) p.ZeroGrad();
        PhaseMark?.Invoke("zero_grad");
        Iteration++;
        return new TrainStepResult(Iteration, loss, lr, step.GradNorm, batch.Targets.Count, !step.Taken);
    }

    /// <summary>torchvision's RetinaNet loss: on CUDA all on the device against cached device anchors, elsewhere on the host.</summary>
    private HeadLossResult RetinaNetLoss(HeadOutputs heads, ImageSize size, IReadOnlyList<DetectionTarget> targets)
    {
        var options = RetinaNetLossOptions.Torchvision;
        if (!DeviceLoss.Supports(heads.ClassLogits, options))
            return HeadLoss.RetinaNet(heads.ClassLogits, heads.BoxRegression, Anchors(size, heads.Grids), targets, options, _precision.LossScale, mark: PhaseMark);
        var key = (size, heads.Grids.Length);
        if (!_deviceAnchors.TryGetValue(key, out var anchors))
        {
            var host = Anchors(size, heads.Grids);
            if (_deviceAnchors.Count > 64) ClearDeviceAnchors();
            using (TensorScope.Untracked()) anchors = Tensor.FromSpan<float>(host, new Shape(host.Length / 4, 4), heads.ClassLogits.Device);
            _deviceAnchors[key] = anchors;
        }
        return HeadLoss.RetinaNet(heads.ClassLogits, heads.BoxRegression, anchors, targets, options, _precision.LossScale, PhaseMark);
    }

    private void ClearDeviceAnchors()
    {
        foreach (var t in _deviceAnchors.Values) t.Dispose();
        _deviceAnchors.Clear();
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
                if (Parallel is not null) r = Parallel.Step(samples);
                else
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
        var dict = TrainCheckpoint.Weights(_model, _precision.Precision == TrainPrecision.Fp32 ? null : Master);
        if (!withOptimizer) return dict;
        try
        {
            TrainCheckpoint.AddState(dict, Architecture.Name, Classes, Iteration, _optimizer);
            if (_precision.Scaler is { } scaler) TrainCheckpoint.AddScaler(dict, scaler);
            return dict;
        }
        catch
        {
            dict.Dispose();
            throw;
        }
    }

    private Tensor? Master(Tensor value)
    {
        for (int i = 0; i < _params.Count; i++)
            if (ReferenceEquals(_params[i].Value, value)) return _optimizer.Master(i);
        return null;
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
            new DetectorOptions { Device = Options.Device, Resize = _ssd is not null ? null : Options.EvalResize });
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
        Parallel?.Dispose();
        Parallel = null;
        ClearDeviceAnchors();
        _ssd?.Dispose();
        foreach (var p in _params) p.Dispose();
        _flatGrads.Dispose();
        _optimizer.Dispose();
        _model.Dispose();
    }
}
