using System.Globalization;
using Osprey.Bench;

// osprey benchmarks: `Osprey.Bench <mode> [options]`, one line per mode below.
//   cpu [--json FILE] [--runs N] [--no-torch] [--sizes 1024,4096|none]: SGEMM GFLOPS and ResNet-50 forward latency on the CPU backend,
//       side by side with PyTorch (bench/cpu/torch_cpu.py, run with /usr/bin/python3 in the same invocation).
//   cpu-convs [--batch N] [--reps N] [--only CIN-COUT-K-S-H]: each distinct ResNet-50 convolution alone (channels_last), wall and CPU ms
//       per call and the count-weighted total: where the CPU forward's time goes.
//   coco-eval --data DIR [--repeat N] [--python PATH]: COCO bbox evaluation of a val2017-sized synthetic set
//       (tools/coco_cases.py bench-gen) by Osprey and by pycocotools (tools/coco_cases.py bench-time), same run.
//   gpu-core [--torch FILE]: element-wise bandwidth vs device-to-device copy, small-op launch overhead with and
//       without a CUDA graph; FILE is bench/gpu/core_bench.py's output (PyTorch's numbers for the same ops).
//   gpu-libs [--convs FILE] [--gemm N] [--tf32] [--out FILE]: cuBLASLt GEMM and cuDNN ResNet-50 convolutions
//       (bench/gpu/run-libs.sh runs it and bench/gpu/torch_libs.py on the GPU host and prints the comparison).
//   autograd [--batch N] [--size H W] [--runs N] [--no-torch]: RetinaNet-R18-FPN forward and forward+backward on the
//       CPU backend, beside PyTorch (bench/cpu/torch_autograd.py) in the same invocation.
//   train-loss [--runs N] [--no-torch]: RetinaNet and SSD300 loss + gradients on the CPU (matching included), next to
//       torchvision's compute_loss + backward (bench/train/torch_loss.py), same shapes, same run.
//   demo-step [--arch A] [--batch N] [--size S] [--steps N]: one `osprey demo` CPU training step split into data, forward,
//       loss, backward and optimiser (wall and CPU ms per step): where the demo's time goes.
//   train-data --data COCO128 [--passes N] [--images N]: CPU ms per image of each stage of `osprey train`'s data pipeline
//       (decode, resize jitter, IoU crop, rotate90, flip, colour jitter, normalise, collate) for RetinaNet (ODTK jitter) and
//       SSD300, the DataLoader's images/s with 1 and 2 workers, and the CPU cores per GPU needed at the H100 training rates.
//   gpu-detect [--dir DIR] [--reps N]: GPU post-processing (decode + top-k + NMS) of a 64-image SSD300 batch and a
//       16-image RetinaNet 800x800 batch; writes the SSD inputs to DIR for bench/gpu/detect_bench.py (torchvision).
//   gpu-train --arch A --batch N --size S [--precision amp|bf16|fp32] [--warmup N] [--steps N] [--json FILE] [--profile N]: training
//       images/s of Trainer.Step on the GPU (bench/gpu/run-train.sh runs it beside bench/gpu/train_bench.py, torchvision).
//   gpu-infer --arch A --weights W.pth --images RAW.u8 [--batch N] [--height H] [--width W] [--runs N] [--torch FILE]:
//       end-to-end detection images/s from a decoded batch on the GPU (bench/gpu/run-infer.sh runs it with
//       bench/gpu/infer_bench.py, the torchvision side, in the same call).
//   optim-step [--steps N] [--warmup N] [--train-steps N] [--sets retina,ssd] [--json FILE]: the optimiser phase (amp/fp32,
//       clip + SGD) on RetinaNet-R50-FPN and SSD300 parameter sets, per-tensor vs multi-tensor kernels, and whole amp steps both ways.
//   train-ddp [--arch A] [--size S] [--per-gpu B] [--precision fp32,amp] [--warmup N] [--iters N] [--gpus 1,2] [--json FILE]: data-parallel training
//       images/s on 1, 2, ... GPUs at the same per-GPU batch (NCCL all-reduce) and the scaling efficiency.
//   engine-profile [--arch A] [--size H [W]] [--batch N] [--precision fp16|fp32] [--runs R] [--pad-input M] [--out FILE]: per-node
//       GPU time of a detector engine (seeded weights; convolution algorithms measured, stored, re-read and pinned), per op kind,
//       TFLOP/s; --pad-input: the multiple the image channels are zero-padded to (0: none, the default; cuDNN's fastest for 3->64 is 4).
//   engine-accuracy (--data COCO128 | --annotations FILE --images DIR) [--weights FILE] [--arch A] [--classes K]
//       [--size H [W] | --resize N] [--batch N] [--device cuda|cuda:N|cpu] [--precisions fp32,fp16[,bf16]] [--score-threshold S]
//       [--out FILE]: engines of one detector at several precisions (the first is the reference) over a COCO-format set: mAP
//       of each, the differences, detection match rate, score and box differences. --weights: a checkpoint (`osprey train`/
//       `osprey demo` name their architecture; other files need --arch), default seeded weights; --device cpu runs 16-bit
//       engines in the CPU backend's emulation (16-bit storage, float32 arithmetic).
try
{
    return Run(args);
}
// Osprey's own errors (weights, COCO JSON, images, CUDA) and bad options or files, in any mode: the message, no stack trace
catch (Exception e) when (e is ArgumentException or Osprey.Core.OspreyException or IOException or UnauthorizedAccessException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}

static int Run(string[] args) => args.FirstOrDefault() switch
{
    "cpu" => Cpu(args),
    "cpu-convs" => CpuConvProfile.Run(args[1..]),
    "coco-eval" => CocoEvalBench.Run(args[1..]),
    "gpu-core" => GpuCoreBench.Run(args[1..]),
    "gpu-libs" => GpuLibsBench.Run(args[1..]),
    "autograd" => AutogradBench.Run(args[1..]),
    "train-loss" => TrainLossBench.Run(args[1..]),
    "demo-step" => DemoStepProfile.Run(args[1..]),
    "train-data" => TrainDataBench.Run(args[1..]),
    "gpu-detect" => GpuDetectBench.Run(args[1..]),
    "gpu-infer" => GpuInferBench.Run(args[1..]),
    "train-ddp" => TrainScalingBench.Run(args[1..]),
    "gpu-train" => GpuTrainBench.Run(args[1..]),
    "optim-step" => OptimStepBench.Run(args[1..]),
    "engine-profile" => EngineProfileBench.Profile(args[1..]),
    "engine-accuracy" => EngineProfileBench.Accuracy(args[1..]),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: Osprey.Bench <mode> [options]; modes: cpu, cpu-convs, coco-eval, gpu-core, gpu-libs, gpu-detect, gpu-infer, train-ddp, gpu-train, engine-profile, engine-accuracy, autograd, train-loss, demo-step, train-data, optim-step");
    return 2;
}

static int Cpu(string[] args)
{
    var options = new CpuBenchOptions();
    for (int i = 1; i < args.Length; i++)
    {
        switch (args[i])
        {
            case "--json" when i + 1 < args.Length: options = options with { JsonPath = args[++i] }; break;
            case "--runs" when i + 1 < args.Length: options = options with { Runs = int.Parse(args[++i], CultureInfo.InvariantCulture) }; break;
            case "--no-torch": options = options with { Torch = false }; break;
            case "--sizes" when i + 1 < args.Length:
                options = options with { GemmSizes = args[++i] == "none" ? [] : args[i].Split(',').Select(v => int.Parse(v, CultureInfo.InvariantCulture)).ToArray() };
                break;
            default:
                Console.Error.WriteLine($"cpu: unknown or incomplete option '{args[i]}'");
                return 2;
        }
    }
    return CpuBench.Run(options);
}
