using Osprey.Core.Tensors;

namespace Osprey.Detection.Training.Loop;

/// <summary>`osprey train --precision`: the network's compute precision. The optimiser always steps FP32 master weights.</summary>
public enum TrainPrecision
{
    /// <summary>Everything in float32.</summary>
    Fp32,
    /// <summary>float16 forward and backward, dynamic loss scaling (<see cref="Optim.GradScaler"/>), FP32 masters (torch.amp + GradScaler).</summary>
    Amp,
    /// <summary>bfloat16 forward and backward, FP32 masters, no loss scaling (bfloat16 has float32's exponent range).</summary>
    Bf16,
}

public static class TrainPrecisions
{
    /// <summary>The dtype of the network's weights and activations.</summary>
    public static DType ComputeType(this TrainPrecision p) => p switch
    {
        TrainPrecision.Amp => DType.Float16,
        TrainPrecision.Bf16 => DType.BFloat16,
        _ => DType.Float32,
    };

    public static string Name(this TrainPrecision p) => p switch
    {
        TrainPrecision.Amp => "amp",
        TrainPrecision.Bf16 => "bf16",
        _ => "fp32",
    };

    /// <summary>Parses `--precision` (fp32, amp, bf16); throws <see cref="ArgumentException"/> naming the option.</summary>
    public static TrainPrecision Parse(string text) => text?.ToLowerInvariant() switch
    {
        "fp32" => TrainPrecision.Fp32,
        "amp" or "fp16" => TrainPrecision.Amp,
        "bf16" => TrainPrecision.Bf16,
        _ => throw new ArgumentException($"--precision {text}: expected fp32, amp or bf16"),
    };
}
