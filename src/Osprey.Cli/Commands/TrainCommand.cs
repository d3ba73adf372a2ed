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
        var precision = new Option<string>("--precision") { Description = "fp32, amp (float16 with loss scaling) or bf16; amp/bf16 keep FP32 master weights and need --device cuda", DefaultValueFactory = _ => "fp32" };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };
        var devices = new Option<string?>("--devices") { Description = "data-parallel training on several GPUs: all, or indices such as 0,1 (--batch is the global batch, split evenly)" };
        var nodes = new Option<int>("--nodes") { Description = "multi-node data parallel: number of nodes (processes), each with the same --devices count", DefaultValueFactory = _ => 1 };
        var nodeRank = new Option<int>("--node-rank") { Description = "this node's index, 0..nodes-1 (node 0 serves the rendezvous, checkpoints and validates)", DefaultValueFactory = _ => 0 };
        var master = new Option<string?>("--master") { Description = "host:port of node 0's rendezvous (multi-node)" };
        var seed = new Option<int>("--seed") { Description = "seed of the initialisation, batch order and augmentation", DefaultValueFactory = _ => 0 };
        var checkpointEvery = new Option<int>("--checkpoint-iters") { Description = "write the checkpoint every N iterations (and at the end)", DefaultValueFactory = _ => 500 };
        var workers = new Option<int?>("--workers") { Description = "data loader threads (decode + augmentation); default: on a GPU every core but one, 2 to 16; on the CPU 2. Results do not depend on it" };
        var log = new Option<string?>("--log-dir") { Description = "folder for train.csv, loss.png and map.png (default: next to MODEL_OUT)" };
        var cmd = new Command("train", "Train a RetinaNet on COCO-format data (resumes from MODEL_OUT when it exists)")
        {
            output, arch, annotations, images, valAnnotations, valImages, valIters, valMax, fineTune, classes, batch, iters, lr, warmup,
            milestones, jitter, resize, maxSize, precision, device, devices, seed, checkpointEvery, log, nodes, nodeRank, master, workers,
        };
        var augment = new TrainAugmentArgs.Options();
        augment.AddTo(cmd);
        cmd.SetAction(r => TrainRunner.Run(new TrainSettings(
            r.GetValue(output)!, r.GetValue(arch)!, r.GetValue(annotations)!, r.GetValue(images)!, r.GetValue(valAnnotations), r.GetValue(valImages),
            r.GetValue(valIters), r.GetValue(valMax), r.GetValue(fineTune), r.GetValue(classes), r.GetValue(batch), r.GetValue(iters), r.GetValue(lr),
            r.GetValue(warmup), r.GetValue(milestones)!, r.GetValue(jitter), r.GetValue(resize), r.GetValue(maxSize), r.GetValue(precision)!,
            r.GetValue(device)!, r.GetValue(devices), r.GetValue(seed), r.GetValue(checkpointEvery), r.GetValue(log))
        {
            Nodes = r.GetValue(nodes), NodeRank = r.GetValue(nodeRank), Master = r.GetValue(master), Augment = augment.Read(r),
            Workers = r.GetValue(workers),
        }));
        return cmd;
    }
}

/// <summary>The parsed command line of `osprey train`.</summary>
public sealed record TrainSettings(
    string Output, string Arch, string Annotations, string Images, string? ValAnnotations, string? ValImages, int ValIters, int ValMax,
    string? FineTune, int? Classes, int Batch, int Iters, double Lr, int Warmup, int[] Milestones, int[]? Jitter, int Resize, int MaxSize,
    string Precision, string Device, string? Devices, int Seed, int CheckpointEvery, string? LogDir)
{
    /// <summary>Multi-node data parallel (--nodes, --node-rank, --master host:port).</summary>
    public int Nodes { get; init; } = 1;
    public int NodeRank { get; init; }
    public string? Master { get; init; }

    /// <summary>The multi-node settings, or null for a single-process run.</summary>
    public MultiNodeOptions? MultiNode()
    {
        if (Nodes == 1 && Master is null) return null;
        if (Master is null) throw new ArgumentException($"--nodes {Nodes}: give --master host:port (node 0's address)");
        var m = new MultiNodeOptions(Nodes, NodeRank, Osprey.Cuda.Nccl.TcpRendezvous.ParseMaster(Master), TimeSpan.FromMinutes(5));
        m.Validate();
        return m;
    }

    /// <summary>--devices as a device list (null without the option): "all" (every CUDA GPU), GPU indices "0,1", or device
    /// names ("cpu,cpu": CPU replicas, for testing the data-parallel path without GPUs).</summary>
    public IReadOnlyList<Core.Tensors.Device>? ParseDevices() =>
        Devices is not null ? TrainDevices.Parse(Devices, minimum: Nodes > 1 ? 1 : 2)
        : Nodes > 1 ? [Core.Tensors.Device.Parse(Device == "cpu" ? "cuda:0" : Device)] : null;

    /// <summary>--workers: data loader threads; null: <see cref="TrainOptions.DefaultWorkers"/> for the device and this machine.</summary>
    public int? Workers { get; init; }

    /// <summary>--flip, --crop, --rotate90, --color.</summary>
    public TrainAugmentArgs Augment { get; init; } = new();

    /// <summary>Trainer options; throws ArgumentException naming the option on a bad value.</summary>
    public TrainOptions ToOptions()
    {
        var precision = TrainPrecisions.Parse(Precision);
        Device device;
        string deviceText = Device;
        if (ParseDevices() is { } list)
        {
            if (Device != "cpu" && Device != list[0].ToString())
                throw new ArgumentException($"--device {Device} and --devices {Devices}: give one of them");
            deviceText = list[0].ToString();
        }
        try
        {
            device = Core.Tensors.Device.Parse(deviceText);
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
        _ = MultiNode();
        if (FineTune is not null && !File.Exists(FineTune)) throw new ArgumentException($"--fine-tune {FineTune}: file not found");
        var o = new TrainOptions
        {
            Architecture = Arch, Classes = Classes, BatchSize = Batch, Iterations = Iters, LearningRate = Lr, Warmup = Warmup,
            Milestones = Milestones, Resize = Resize, MaxSize = MaxSize, JitterMin = Jitter is { Length: 2 } ? Jitter[0] : 0, JitterMax = Jitter is { Length: 2 } ? Jitter[1] : 0,
            Device = device, Seed = Seed, Precision = precision,
            Workers = Workers ?? TrainOptions.DefaultWorkers(device, Environment.ProcessorCount),
        };
        o = Augment.ApplyTo(o);
        o.Validate();
        return o;
    }
}
