using Osprey.Core.Tensors;
using Osprey.Detection.Boxes;
using Osprey.Detection.Models;
using Osprey.Detection.Training.Losses;
using Osprey.Vision.Transforms;

namespace Osprey.Detection.Training.Loop;

/// <summary>
/// What training ssd300_vgg16 needs beyond RetinaNet's loop, as torchvision trains SSD: the fixed 300x300 input (resize without
/// keeping the aspect ratio, SSD's normalisation), the 8732 default boxes of <see cref="DefaultBoxGenerator.Ssd300"/>, and
/// <see cref="SsdLoss"/> (SSDMatcher 0.5 with best-box forcing, smooth L1 on encoded targets with weights 10/10/5/5, softmax
/// cross-entropy over foreground plus the 3:1 hardest negatives, both over the batch's foreground count). Class 0 is the
/// background, so labels (COCO category ids) must be at least 1. The L2Norm scale trains with the convolutions
/// (<see cref="DetectionModel.ExtraParameters"/>).
/// </summary>
public sealed class SsdTraining : IDisposable
{
    private readonly DefaultBoxGenerator _boxes = DefaultBoxGenerator.Ssd300();
    private readonly Dictionary<(ImageSize, int), float[]> _cache = [];
    private readonly Dictionary<(ImageSize, int), Tensor> _device = [];

    /// <summary>Refuses options SSD cannot follow (jitter: the input is always 300x300).</summary>
    public static void Check(TrainOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.JitterMax > 0) throw new ArgumentException($"--jitter {options.JitterMin} {options.JitterMax}: ssd300_vgg16 trains at its fixed 300x300 input");
    }

    /// <summary>torchvision's SSD transform: resize to 300x300, SSD's normalisation.</summary>
    public static Preprocessor Preprocessor(Architecture arch, Device device)
    {
        ArgumentNullException.ThrowIfNull(arch);
        return new Preprocessor(arch.Resize, arch.Normalization, device);
    }

    /// <summary>The loss and the head-output gradients (times <paramref name="gradScale"/>) for one batch;
    /// <paramref name="mark"/>: optional profiling marks at the end of each part of the loss (see <see cref="Trainer"/>).</summary>
    public HeadLossResult Loss(HeadOutputs heads, ImageSize input, IReadOnlyList<DetectionTarget> targets, double gradScale, Action<string>? mark = null)
    {
        ArgumentNullException.ThrowIfNull(heads);
        ArgumentNullException.ThrowIfNull(targets);
        for (int i = 0; i < targets.Count; i++)
            foreach (int label in targets[i].Labels)
                if (label < 1) throw new ArgumentException($"ssd300_vgg16 training: image {i} has label {label}; class 0 is SSD's background, so category ids must be at least 1");
        var key = (input, heads.Grids.Length);
        if (!_cache.TryGetValue(key, out var anchors))
        {
            anchors = _boxes.Generate(input, heads.Grids);
            _cache[key] = anchors;
        }
        var options = SsdLossOptions.Torchvision;
        if (!DeviceLoss.Supports(heads.ClassLogits, options))
            return HeadLoss.Ssd(heads.ClassLogits, heads.BoxRegression, anchors, targets, options, gradScale, mark: mark);
        if (!_device.TryGetValue(key, out var onDevice))
        {
            using (TensorScope.Untracked()) onDevice = Tensor.FromSpan<float>(anchors, new Shape(anchors.Length / 4, 4), heads.ClassLogits.Device);
            _device[key] = onDevice;
        }
        return HeadLoss.Ssd(heads.ClassLogits, heads.BoxRegression, onDevice, targets, options, gradScale, mark);
    }

    /// <summary>Frees the default boxes held on devices.</summary>
    public void Dispose()
    {
        foreach (var t in _device.Values) t.Dispose();
        _device.Clear();
    }
}
