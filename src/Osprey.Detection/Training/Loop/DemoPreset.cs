using Osprey.Core.Tensors;
using Osprey.Detection.Training.Data;

namespace Osprey.Detection.Training.Loop;

/// <summary>
/// The defaults of <c>osprey demo</c> for one device kind: the architecture, the synthetic data (training images, their
/// size range and smallest object), the input size, batch, iterations, optimiser and learning rate. The schedule is scaled
/// to the iterations: warm-up <see cref="WarmupFor"/>, one milestone (x0.1) at 3/4.
/// </summary>
/// <param name="ImageMin">Smallest side of a generated image (pixels).</param>
/// <param name="ImageMax">Largest side of a generated image.</param>
/// <param name="MinObject">Smallest side of a generated shape.</param>
public sealed record DemoPreset(string Architecture, int Iterations, int Batch, int Resize, string Optimizer, double LearningRate,
    int Images, int ImageMin, int ImageMax, int MinObject)
{
    /// <summary>
    /// The CPU demo: <c>retinanet_tiny_fpn</c> at 128 px on images of 128..160 px (shapes 16 px and up), batch 8,
    /// AdamW lr 0.002, 1200 iterations (a few minutes on 2 cores).
    /// </summary>
    public static DemoPreset Cpu { get; } = new("retinanet_tiny_fpn", 1200, 8, 128, "adamw", 0.002, 400, 128, 160, 16);

    /// <summary>The GPU demo as measured on the H100: retinanet_resnet18_fpn at 128 px on images of 128..256 px, batch 16,
    /// SGD lr 0.02, 1500 iterations (150 s there, mAP 0.814).</summary>
    public static DemoPreset Cuda { get; } = new("retinanet_resnet18_fpn", 1500, 16, 128, "sgd", 0.02, 400, 128, 256, 16);

    /// <summary>The preset of a device: <see cref="Cuda"/> for a CUDA device, else <see cref="Cpu"/>.</summary>
    public static DemoPreset For(Device device) => device.Type == DeviceType.Cuda ? Cuda : Cpu;

    /// <summary>Warm-up iterations for a run of <paramref name="iterations"/>: min(100, iterations / 5).</summary>
    public static int WarmupFor(int iterations) => Math.Min(100, iterations / 5);

    /// <summary>The synthetic set's options for <paramref name="images"/> images.</summary>
    public SyntheticShapesOptions Data(int images, int seed) =>
        new(Images: images, MinSize: ImageMin, MaxSize: ImageMax, MaxObjects: 4, Seed: seed, MinObjectSize: MinObject);
}
