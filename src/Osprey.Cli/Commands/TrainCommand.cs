using System.CommandLine;
using Osprey.Core.Tensors;
using Osprey.Detection.Models;
using Osprey.Detection.Training.Loop;

namespace Osprey.Cli.Commands;

/// <summary>`osprey train`: trains (or fine-tunes, or resumes) a RetinaNet on COCO-format data.</summary>
public static class TrainCommand
{
    public static Command Create()
    {
        var output = new Argument<string>("MODEL_OUT") { Description = "checkpoint to write (safetensors; `osprey infer --weights` loads it); resumed from when it exists" };
        var arch = new Option<string>("--arch") { Description = $"architecture: {string.Join(", ", Architectures.All.Where(a => a.Family == DetectorFamily.RetinaNet).Select(a => a.Name))}", Required = true };
        var annotations = new Option<string>("--annotations") { Description = "COCO instances JSON of the training set", Required = true };
        var images = new Option<string>("--images") { Description = "folder of the training images", Required = true };
        var valAnnotations = new Option<string?>("--val-annotations") { Description = "COCO instances JSON of the validation set" };
        var valImages = new Option<string?>("--val-images") { Description = "folder of the validation images" };
        var valIters = new Option<int>("--val-iters") { Description = "validate every N iterations (and at the end)", DefaultValueFactory = _ => 1000 };
        var valMax = new Option<int>("--val-images-max") { Description = "validate on at most this many images", DefaultValueFactory = _ => 500 };
        var fineTune = new Option<string?>("--fine-tune") { Description = "start from these weights (matching tensors copied; the class layer re-initialised if --classes differs)" };
        var classes = new Option<int?>("--classes") { Description = "classes of the network (default: largest category id + 1)" };
        var batch = new Option<int>("--batch") { Description = "images per iteration", DefaultValueFactory = _ => 2 };
        var iters = new Option<int>("--iters") { Description = "iterations", DefaultValueFactory = _ => 90_000 };
        var lr = new Option<double>("--lr") { Description = "base learning rate (SGD, momentum 0.9, weight decay 1e-4)", DefaultValueFactory = _ => 0.01 };
        var warmup = new Option<int>("--warmup") { Description = "linear warm-up iterations", DefaultValueFactory = _ => 1000 };
        var milestones = new Option<int[]>("--milestones") { Description = "iterations where the lr is multiplied by 0.1", AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => [60_000, 80_000] };
        var jitter = new Option<int[]?>("--jitter") { Description = "MIN MAX: each image draws its shorter side in this range (ODTK)", AllowMultipleArgumentsPerToken = true };
        var resize = new Option<int>("--resize") { Description = "shorter side of the input", DefaultValueFactory = _ => 800 };
        var maxSize = new Option<int>("--max-size") { Description = "longer side cap", DefaultValueFactory = _ => 1333 };
        var precision = new Option<string>("--precision") { Description = "fp32 (amp and bf16: not yet)", DefaultValueFactory = _ => "fp32" };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };
        var devices = new Option<string?>("--devices") { Description = "several GPUs (all or 0,1): not yet" };
        var seed = new Option<int>("--seed") { Description = "seed of the initialisation, batch order and augmentation", DefaultValueFactory = _ => 0 };
        var checkpointEvery = new Option<int>("--checkpoint-iters") { Description = "write the checkpoint every N iterations (and at the end)", DefaultValueFactory = _ => 500 };
        var log = new Option<string?>("--log-dir") { Description = "folder for train.csv, loss.png and map.png (default: next to MODEL_OUT)" };
        var cmd = new Command("train", "Train a RetinaNet on COCO-format data (resumes from MODEL_OUT when it exists)")
        {
            output, arch, annotations, images, valAnnotations, valImages, valIters, valMax, fineTune, classes, batch, iters, lr, warmup,
            milestones, jitter, resize, maxSize, precision, device, devices, seed, checkpointEvery, log,
        };
        var augment = new TrainAugmentArgs.Options();
        augment.AddTo(cmd);
        cmd.SetAction(r => TrainRunner.Run(new TrainSettings(
            r.GetValue(output)!, r.GetValue(arch)!, r.GetValue(annotations)!, r.GetValue(images)!, r.GetValue(valAnnotations), r.GetValue(valImages),
            r.GetValue(valIters), r.GetValue(valMax), r.GetValue(fineTune), r.GetValue(classes), r.GetValue(batch), r.GetValue(iters), r.GetValue(lr),
            r.GetValue(warmup), r.GetValue(milestones)!, r.GetValue(jitter), r.GetValue(resize), r.GetValue(maxSize), r.GetValue(precision)!,
            r.GetValue(device)!, r.GetValue(devices), r.GetValue(seed), r.GetValue(checkpointEvery), r.GetValue(log)) { Augment = augment.Read(r) }));
        return cmd;
    }
}

/// <summary>The parsed command line of `osprey train`.</summary>
public sealed record TrainSettings(
    string Output, string Arch, string Annotations, string Images, string? ValAnnotations, string? ValImages, int ValIters, int ValMax,
    string? FineTune, int? Classes, int Batch, int Iters, double Lr, int Warmup, int[] Milestones, int[]? Jitter, int Resize, int MaxSize,
    string Precision, string Device, string? Devices, int Seed, int CheckpointEvery, string? LogDir)
{
    /// <summary>--flip, --crop, --rotate90, --color.</summary>
    public TrainAugmentArgs Augment { get; init; } = new();

    /// <summary>Trainer options; throws ArgumentException naming the option on a bad value.</summary>
    public TrainOptions ToOptions()
    {
        if (Precision != "fp32")
            throw new ArgumentException(Precision is "amp" or "bf16"
                ? $"--precision {Precision}: mixed-precision training is not implemented yet (the GradScaler and FP32 master weights exist; the CUDA backward kernels it needs are in progress); use fp32"
                : $"--precision {Precision}: expected fp32 (amp, bf16: not yet)");
        if (Devices is not null) throw new ArgumentException($"--devices {Devices}: multi-GPU training is not implemented yet; use --device");
        Device device;
        try
        {
            device = Core.Tensors.Device.Parse(Device);
        }
        catch (FormatException e)
        {
            throw new ArgumentException($"--device {Device}: {e.Message}", e);
        }
        if (device.Type is not (DeviceType.Cpu or DeviceType.Cuda)) throw new ArgumentException($"--device {Device}: expected cpu, cuda or cuda:N");
        if (Jitter is { Length: not (0 or 2) }) throw new ArgumentException($"--jitter takes two sizes (MIN MAX), got {Jitter.Length}");
        if (Milestones.Length == 0) throw new ArgumentException("--milestones needs at least one iteration");
        if ((ValAnnotations is null) != (ValImages is null)) throw new ArgumentException("--val-annotations and --val-images go together");
        if (ValIters < 1) throw new ArgumentException($"--val-iters {ValIters} must be at least 1");
        if (CheckpointEvery < 1) throw new ArgumentException($"--checkpoint-iters {CheckpointEvery} must be at least 1");
        if (FineTune is not null && !File.Exists(FineTune)) throw new ArgumentException($"--fine-tune {FineTune}: file not found");
        var o = new TrainOptions
        {
            Architecture = Arch, Classes = Classes, BatchSize = Batch, Iterations = Iters, LearningRate = Lr, Warmup = Warmup,
            Milestones = Milestones, Resize = Resize, MaxSize = MaxSize, JitterMin = Jitter is { Length: 2 } ? Jitter[0] : 0, JitterMax = Jitter is { Length: 2 } ? Jitter[1] : 0,
            Device = device, Seed = Seed,
        };
        o = Augment.ApplyTo(o);
        o.Validate();
        return o;
    }
}
