using Osprey.Core.Tensors;
using Osprey.Vision.Transforms;

namespace Osprey.Detection.Training.Loop;

/// <summary>
/// Settings of a training run (`osprey train`). Defaults are ODTK's schedule (SGD momentum 0.9, weight decay 1e-4,
/// lr 0.01, warm-up 1000, milestones 60k/80k of 90k) at torchvision's input size (shorter side 800, longer at most 1333).
/// </summary>
public sealed record TrainOptions
{
    public required string Architecture { get; init; }
    /// <summary>Classes of the network; null: the largest category id of the annotations + 1 (labels are COCO category ids,
    /// as torchvision's COCO detectors, so `osprey infer` results need no mapping).</summary>
    public int? Classes { get; init; }
    public int BatchSize { get; init; } = 2;
    public int Iterations { get; init; } = 90_000;
    public double LearningRate { get; init; } = 0.01;
    public int Warmup { get; init; } = 1000;
    public int[] Milestones { get; init; } = [60_000, 80_000];
    public double Momentum { get; init; } = 0.9;
    public double WeightDecay { get; init; } = 1e-4;
    /// <summary>"sgd" (momentum <see cref="Momentum"/>) or "adamw" (torch's betas and eps; the decay is <see cref="WeightDecay"/>).</summary>
    public string Optimizer { get; init; } = "sgd";
    /// <summary>Global gradient-norm clip (0: none).</summary>
    public double ClipNorm { get; init; } = 10;
    /// <summary>On a CUDA device, the optimiser phase (inf/NaN check, unscale, clip, update, 16-bit refresh) as three
    /// multi-tensor launches (<see cref="Optim.Optimizer.TryStepMultiTensor"/>); false: one tensor at a time (the reference path,
    /// kept for comparison).</summary>
    public bool MultiTensorOptimizer { get; init; } = true;
    /// <summary>Shorter side of the network input; with <see cref="JitterMin"/>/<see cref="JitterMax"/> set, each image draws its
    /// own in that range instead (ODTK's --jitter, see <see cref="TrainAugmentation"/>).</summary>
    public int Resize { get; init; } = 800;
    public int MaxSize { get; init; } = 1333;
    public int JitterMin { get; init; }
    public int JitterMax { get; init; }
    public double FlipProbability { get; init; } = 0.5;
    /// <summary>torchvision's RandomIoUCrop on every image (`--crop`).</summary>
    public bool Crop { get; init; }
    /// <summary>Rotation by 0, 90, 180 or 270 degrees drawn per image (`--rotate90`).</summary>
    public bool Rotate90 { get; init; }
    /// <summary>ColorJitter ranges (`--color B C S H`); zeros: off.</summary>
    public ColorRanges Color { get; init; }
    public Device Device { get; init; } = Device.Cpu;
    /// <summary>Compute precision (amp, bf16: 16-bit forward/backward with FP32 master weights; CUDA only).</summary>
    public TrainPrecision Precision { get; init; } = TrainPrecision.Fp32;
    public int Seed { get; init; }
    /// <summary>Data loader threads (decode + augmentation per image, `--workers`); the batches do not depend on it (every
    /// sample draws from its own seeded stream). `osprey train` defaults to <see cref="DefaultWorkers"/>.</summary>
    public int Workers { get; init; } = 2;

    /// <summary>Most loader threads accepted (each is a dedicated thread).</summary>
    public const int MaxWorkers = 256;

    /// <summary>
    /// `osprey train`'s default loader threads for one training process: on a GPU, every core but one (the training thread
    /// collates, normalises on the host and launches the kernels), at least 2 and at most 16 (decode + augmentation of one
    /// coco image is 10-53 CPU ms, `Osprey.Bench train-data`: an H100 needs about 5-7 cores to keep up, docs/training.md). On the CPU
    /// the network's kernels already use every core, so 2 threads: enough to load the next batch during a step. One process
    /// drives all of its --devices GPUs with one loader; when several training processes share a machine, give each
    /// --workers (its share of the cores).
    /// </summary>
    public static int DefaultWorkers(Device device, int processorCount) =>
        device.Type == DeviceType.Cpu ? 2 : Math.Clamp(processorCount - 1, 2, 16);

    /// <summary>Throws <see cref="ArgumentException"/> naming the option on a bad value.</summary>
    public void Validate()
    {
        if (BatchSize < 1) throw new ArgumentException($"--batch {BatchSize} must be at least 1");
        if (Iterations < 1) throw new ArgumentException($"--iters {Iterations} must be at least 1");
        if (!(LearningRate > 0) || double.IsInfinity(LearningRate)) throw new ArgumentException($"--lr {LearningRate} must be a positive number");
        if (Warmup < 0) throw new ArgumentException($"--warmup {Warmup} must be >= 0");
        if (Milestones.Any(m => m < 1)) throw new ArgumentException($"--milestones {string.Join(' ', Milestones)} must be positive iterations");
        if (Resize < 32) throw new ArgumentException($"--resize {Resize} must be at least 32");
        if (MaxSize < Resize) throw new ArgumentException($"--max-size {MaxSize} must be at least --resize {Resize}");
        if ((JitterMin != 0 || JitterMax != 0) && (JitterMin < 32 || JitterMax < JitterMin || JitterMax > MaxSize))
            throw new ArgumentException($"--jitter {JitterMin} {JitterMax}: need 32 <= min <= max <= --max-size {MaxSize}");
        if (Classes is int k && k < 1) throw new ArgumentException($"--classes {k} must be at least 1");
        if (Optimizer is not ("sgd" or "adamw")) throw new ArgumentException($"optimizer '{Optimizer}': expected sgd or adamw");
        if (Precision != TrainPrecision.Fp32 && Device.Type == DeviceType.Cpu)
            throw new ArgumentException($"--precision {Precision.Name()} needs --device cuda (the CPU backend's backward kernels run float32 only)");
        if (Workers is < 1 or > MaxWorkers) throw new ArgumentException($"--workers {Workers}: loader threads must be between 1 and {MaxWorkers}");
        TrainAugmentation.Validate(this);
    }

    /// <summary>A fresh optimiser of <see cref="Optimizer"/>'s kind with these settings.</summary>
    public Optim.Optimizer CreateOptimizer() => Optimizer == "adamw"
        ? new Optim.AdamW(new Optim.AdamWOptions(LearningRate, WeightDecay: WeightDecay))
        : new Optim.Sgd(new Optim.SgdOptions(LearningRate, Momentum, 0, WeightDecay));

    /// <summary>The resize used for validation and inference (the fixed size, or the middle of the jitter range).</summary>
    public ResizePolicy EvalResize => ResizePolicy.RetinaNetTorchvision with { MinSize = JitterMax > 0 ? (JitterMin + JitterMax) / 2 : Resize, MaxSize = MaxSize };
}
