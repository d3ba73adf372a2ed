using Osprey.Core.IO;
using Osprey.Core.Tensors;
using Osprey.Detection.Boxes;

namespace Osprey.Detection.Models;

/// <summary>
/// What a detection network returns for a batch: logits [N, A, K] and box regression [N, A, 4] over all anchors
/// of all levels (level-major, then location row-major, then anchor, as torchvision concatenates them), the
/// feature-map size of each level, and the feature maps themselves when asked for. Owns its tensors.
/// </summary>
public sealed class HeadOutputs(Tensor classLogits, Tensor boxRegression, ImageSize[] grids, Tensor[]? features) : IDisposable
{
    public Tensor ClassLogits { get; } = classLogits;
    public Tensor BoxRegression { get; } = boxRegression;
    public ImageSize[] Grids { get; } = grids;

    /// <summary>The feature maps the heads ran on (FPN levels or SSD sources), or empty if not kept.</summary>
    public Tensor[] Features { get; } = features ?? [];

    public void Dispose()
    {
        ClassLogits.Dispose();
        BoxRegression.Dispose();
        foreach (var f in Features) f.Dispose();
    }
}

/// <summary>
/// A detection network: the convolutional part only (anchors, decoding and NMS live in <see cref="Boxes"/>),
/// declared with its reference implementation's parameter names and loaded from a state dict.
/// </summary>
public abstract class DetectionModel : IDisposable
{
    protected DetectionModel(string architecture, int classes)
    {
        Architecture = architecture;
        Classes = classes;
    }

    public string Architecture { get; }

    /// <summary>Classes predicted per anchor (torchvision's COCO models: 91, index = COCO category id, 0 unused / background).</summary>
    public int Classes { get; }

    public ParameterTable Parameters { get; } = new();

    public Device Device { get; private set; } = Device.Cpu;

    /// <summary>
    /// Checks the weights against <see cref="Parameters"/> (one error listing every problem) and loads them onto a
    /// device, cast once to <paramref name="dtype"/> (float32, or float16 on a CUDA device; parts that need float32
    /// keep it, see each model). A state dict saved from a DistributedDataParallel wrapper (every key prefixed
    /// "module.", as in NVIDIA's older SSD checkpoints, which its entrypoints unwrap) is read without the prefix.
    /// </summary>
    public void Load(StateDict weights, string source, Device device, MemoryFormat format = MemoryFormat.Contiguous, DType dtype = DType.Float32)
    {
        ArgumentNullException.ThrowIfNull(weights);
        if (dtype is not (DType.Float32 or DType.Float16 or DType.BFloat16)) throw new ArgumentException($"{Architecture}: precision {dtype} is not supported (float32, float16 or bfloat16)");
        if (dtype != DType.Float32 && device.Type == DeviceType.Cpu) throw new ArgumentException($"{Architecture}: {dtype} needs a CUDA device (the CPU backend runs float32)");
        using var unwrapped = UnwrapDistributed(weights);
        var w = unwrapped ?? weights;
        Parameters.Check(w, source);
        LoadChecked(w, device, format, dtype);
        Device = device;
        Format = format;
        DType = dtype;
    }

    /// <summary>The precision of the weights and activations (inputs must be of it; head outputs come in it).</summary>
    public DType DType { get; private set; } = DType.Float32;

    private static StateDict? UnwrapDistributed(StateDict weights)
    {
        const string Prefix = "module.";
        bool any = false;
        foreach (string k in weights.Keys)
        {
            if (!k.StartsWith(Prefix, StringComparison.Ordinal)) return null;
            any = true;
        }
        if (!any) return null;
        var sd = new StateDict();
        foreach (var (k, t) in weights.Entries) sd.Add(k[Prefix.Length..], t.Share());
        return sd;
    }

    /// <summary>The activation layout the weights were prepared for (inputs are converted to it).</summary>
    public MemoryFormat Format { get; private set; } = MemoryFormat.Contiguous;

    /// <summary>Trainable tensors other than the convolutions of <see cref="ParameterTable.Layers"/> (e.g. SSD's L2Norm scale):
    /// the reference's name and the tensor the forward uses (same elements as the named weight; its shape may be a view of
    /// it). The model's own tensors: do not dispose them. Empty until loaded.</summary>
    public virtual IReadOnlyList<(string Name, Tensor Value)> ExtraParameters => [];

    protected abstract void LoadChecked(StateDict weights, Device device, MemoryFormat format, DType dtype);

    /// <summary>Runs the network on a normalised, padded batch [N, 3, H, W] (of <see cref="DType"/>, on <see cref="Device"/>).</summary>
    public abstract HeadOutputs Forward(Tensor images, bool keepFeatures = false);

    public abstract void Dispose();

    /// <summary>
    /// [N, A*K, H, W] head output to [N, H*W*A, K], as torchvision's heads view/permute/reshape it.
    /// </summary>
    protected static Tensor Flatten(Tensor x, int k)
    {
        ArgumentNullException.ThrowIfNull(x);
        int n = x.Shape[0], h = x.Shape[2], w = x.Shape[3];
        using var v = x.Reshape(n, x.Shape[1] / k, k, h, w);
        using var p = v.Permute(0, 3, 4, 1, 2);
        return p.Reshape(n, -1, k);
    }
}
