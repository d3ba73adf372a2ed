using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;

namespace Osprey.Detection.Training.Losses;

/// <summary>A loss value with the gradients w.r.t. the head outputs, as tensors shaped, typed and placed like the outputs
/// (the seeds for the network's backward pass). Dispose to free the gradients. A device loss (<see cref="DeviceLoss"/>) stays
/// on the device until <see cref="Loss"/> is first read (that read waits for the queued work).</summary>
public sealed class HeadLossResult : IDisposable
{
    private DetectionLoss? _loss;
    private readonly Tensor? _deviceLoss;

    public HeadLossResult(DetectionLoss loss, Tensor classGrad, Tensor boxGrad)
    {
        _loss = loss;
        ClassGrad = classGrad;
        BoxGrad = boxGrad;
    }

    /// <summary>A loss held on the device: <paramref name="deviceLoss"/> is [2] int64 holding the float64 bits of the
    /// classification and box parts (owned by the result).</summary>
    internal HeadLossResult(Tensor deviceLoss, Tensor classGrad, Tensor boxGrad)
    {
        _deviceLoss = deviceLoss;
        ClassGrad = classGrad;
        BoxGrad = boxGrad;
    }

    public DetectionLoss Loss => _loss ??= Read();

    public Tensor ClassGrad { get; }
    public Tensor BoxGrad { get; }

    private DetectionLoss Read()
    {
        ObjectDisposedException.ThrowIf(_deviceLoss!.IsDisposed, this);
        long[] bits = _deviceLoss.ToArray<long>();
        return new DetectionLoss(BitConverter.Int64BitsToDouble(bits[0]), BitConverter.Int64BitsToDouble(bits[1]));
    }

    public void Dispose()
    {
        ClassGrad.Dispose();
        BoxGrad.Dispose();
        _deviceLoss?.Dispose();
    }
}

/// <summary>
/// The batch losses on head-output tensors of any device and floating dtype: the outputs ([N, A, K] logits, [N, A, 4] codes)
/// are read to the host in float32, the loss and gradients computed there (<see cref="RetinaNetLoss"/>, <see cref="SsdLoss"/>),
/// and the gradients returned on the outputs' device and dtype, multiplied by <paramref name="gradScale"/> (the loss scale
/// under FP16 training).
/// </summary>
public static class HeadLoss
{
    /// <param name="mark">Optional profiling marks at the end of each part of the loss (loss.match, then loss.cls and loss.box on
    /// the fused device path, loss.focal and loss.box on the others).</param>
    /// <param name="focalOnDevice">Default (null): on CUDA head outputs the whole loss runs on the device (<see cref="DeviceLoss"/>:
    /// fused matching, focal and box kernels; GIoU excepted), elsewhere on the host. true: the classification part with
    /// <see cref="FocalLossOps"/> where the logits are (only labels and weights are uploaded), matching and boxes on the host.
    /// false: all on the host.</param>
    public static HeadLossResult RetinaNet(Tensor classLogits, Tensor boxRegression, ReadOnlySpan<float> anchors,
        IReadOnlyList<DetectionTarget> targets, RetinaNetLossOptions options, double gradScale = 1, bool? focalOnDevice = null,
        Action<string>? mark = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (focalOnDevice is null && classLogits is not null && DeviceLoss.Supports(classLogits, options))
        {
            CheckShapes(classLogits, boxRegression, "retinanet loss");
            int na = classLogits.Shape[1];
            if (anchors.Length != (long)na * 4) throw new ArgumentException($"retinanet loss: {anchors.Length} anchor floats for {na} anchors");
            using var dev = Tensor.FromSpan(anchors, new Shape(na, 4), classLogits.Device);
            return RetinaNet(classLogits, boxRegression, dev, targets, options, gradScale, mark);
        }
        if (!(focalOnDevice ?? classLogits?.Device.Type != DeviceType.Cpu))
        {
            var (cls, reg, k) = Read(classLogits!, boxRegression, "retinanet loss");
            var gc = new float[cls.Length];
            var gb = new float[reg.Length];
            var loss = RetinaNetLoss.Compute(cls, reg, anchors, targets, k, options, gc, gb);
            return Result(loss, gc, gb, classLogits!, boxRegression, gradScale);
        }
        CheckShapes(classLogits!, boxRegression, "retinanet loss");
        int n = classLogits!.Shape[0], a = classLogits.Shape[1], kk = classLogits.Shape[2];
        RetinaNetLoss.Check(n * a * kk, n * a * 4, anchors.Length, targets?.Count ?? 0, kk, n * a * kk, n * a * 4, "retinanet loss");
        if (targets!.Count != n) throw new ArgumentException($"retinanet loss: {targets.Count} targets for {n} images");
        var matches = RetinaNetLoss.Match(anchors, targets, kk, options);
        var (labels, weights) = RetinaNetLoss.ClassificationTargets(matches, targets, a);
        mark?.Invoke("loss.match");
        var (clsLoss, clsGrad) = FocalLossOps.SigmoidFocal(classLogits, labels, weights, options.Alpha, options.Gamma);
        Tensor? classGrad = null;
        try
        {
            using (clsGrad)
            using (var scaled = Op.Binary(BinaryOp.Mul, clsGrad, gradScale))
                classGrad = classLogits.DType == DType.Float32 ? scaled.Share() : Op.Cast(scaled, classLogits.DType);
            mark?.Invoke("loss.focal");
            float[] regHost = ToHost(boxRegression);
            var gbHost = new float[regHost.Length];
            var box = RetinaNetLoss.Core([], regHost, anchors, targets, kk, options, [], gbHost, matches, classification: false);
            if (gradScale != 1) for (int i = 0; i < gbHost.Length; i++) gbHost[i] = (float)(gbHost[i] * gradScale);
            var result = new HeadLossResult(new DetectionLoss(clsLoss, box.BoxRegression), classGrad, Upload(gbHost, boxRegression));
            mark?.Invoke("loss.box");
            return result;
        }
        catch
        {
            classGrad?.Dispose();
            throw;
        }
    }

    /// <summary>The RetinaNet loss on CUDA head outputs with the anchors already on the device ([A, 4] float32): all of it
    /// there (<see cref="DeviceLoss"/>; GIoU and non-torchvision coders are not fused and refused here).</summary>
    public static HeadLossResult RetinaNet(Tensor classLogits, Tensor boxRegression, Tensor anchors, IReadOnlyList<DetectionTarget> targets,
        RetinaNetLossOptions options, double gradScale = 1, Action<string>? mark = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(targets);
        CheckShapes(classLogits, boxRegression, "retinanet loss");
        if (!DeviceLoss.Supports(classLogits, options))
            throw new ArgumentException($"retinanet loss: the device loss needs CUDA head outputs (got {classLogits.DType.Name()} on {classLogits.Device}; float32, float16 or bfloat16), an L1 or smooth L1 box loss (got {options.BoxLoss}) and torchvision box coding");
        if (targets.Count != classLogits.Shape[0]) throw new ArgumentException($"retinanet loss: {targets.Count} targets for {classLogits.Shape[0]} images");
        return DeviceLoss.RetinaNet(classLogits, boxRegression, anchors, targets, options, gradScale, mark);
    }

    /// <summary>The SSD loss on CUDA head outputs with the default boxes already on the device ([A, 4] float32).</summary>
    public static HeadLossResult Ssd(Tensor classLogits, Tensor boxRegression, Tensor anchors, IReadOnlyList<DetectionTarget> targets,
        SsdLossOptions options, double gradScale = 1, Action<string>? mark = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(targets);
        CheckShapes(classLogits, boxRegression, "ssd loss");
        if (!DeviceLoss.Supports(classLogits, options))
            throw new ArgumentException($"ssd loss: the device loss needs CUDA head outputs (got {classLogits.DType.Name()} on {classLogits.Device}; float32, float16 or bfloat16) and torchvision box coding");
        if (targets.Count != classLogits.Shape[0]) throw new ArgumentException($"ssd loss: {targets.Count} targets for {classLogits.Shape[0]} images");
        return DeviceLoss.Ssd(classLogits, boxRegression, anchors, targets, options, gradScale, mark);
    }

    /// <param name="clsOnDevice">Default (null): on CUDA head outputs the whole loss runs on the device (<see cref="DeviceLoss"/>),
    /// elsewhere on the host. true: the cross-entropy part with <see cref="SsdLossOps"/> where the logits are (only per-anchor values
    /// cross; mining, matching and boxes on the host). false: all on the host.</param>
    /// <param name="mark">Optional profiling marks at the end of each part of the loss.</param>
    public static HeadLossResult Ssd(Tensor classLogits, Tensor boxRegression, ReadOnlySpan<float> anchors,
        IReadOnlyList<DetectionTarget> targets, SsdLossOptions options, double gradScale = 1, bool? clsOnDevice = null,
        Action<string>? mark = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (clsOnDevice is null && classLogits is not null && DeviceLoss.Supports(classLogits, options))
        {
            CheckShapes(classLogits, boxRegression, "ssd loss");
            int na = classLogits.Shape[1];
            if (anchors.Length != (long)na * 4) throw new ArgumentException($"ssd loss: {anchors.Length} anchor floats for {na} anchors");
            using var dev = Tensor.FromSpan(anchors, new Shape(na, 4), classLogits.Device);
            return Ssd(classLogits, boxRegression, dev, targets, options, gradScale, mark);
        }
        if (clsOnDevice ?? classLogits?.Device.Type != DeviceType.Cpu)
        {
            CheckShapes(classLogits!, boxRegression, "ssd loss");
            return SsdLossOps.Compute(classLogits!, boxRegression, anchors, targets, options, gradScale, mark);
        }
        var (cls, reg, k) = Read(classLogits!, boxRegression, "ssd loss");
        var gc = new float[cls.Length];
        var gb = new float[reg.Length];
        var loss = SsdLoss.Compute(cls, reg, anchors, targets, k, options, gc, gb);
        return Result(loss, gc, gb, classLogits!, boxRegression, gradScale);
    }

    private static (float[] Cls, float[] Reg, int K) Read(Tensor cls, Tensor reg, string what)
    {
        CheckShapes(cls, reg, what);
        return (ToHost(cls), ToHost(reg), cls.Shape[2]);
    }

    private static void CheckShapes(Tensor cls, Tensor reg, string what)
    {
        ArgumentNullException.ThrowIfNull(cls);
        ArgumentNullException.ThrowIfNull(reg);
        if (cls.Rank != 3 || reg.Rank != 3 || reg.Shape[2] != 4 || cls.Shape[0] != reg.Shape[0] || cls.Shape[1] != reg.Shape[1])
            throw new ArgumentException($"{what}: head outputs {cls.Shape} and {reg.Shape} (need [N, A, K] and [N, A, 4])");
        if (!cls.DType.IsFloating() || !reg.DType.IsFloating())
            throw new ArgumentException($"{what}: head outputs are {cls.DType.Name()} and {reg.DType.Name()} (need floating point)");
    }

    private static float[] ToHost(Tensor x)
    {
        if (x.DType == DType.Float32) return x.ToArray<float>();
        using var c = Op.Cast(x, DType.Float32);
        return c.ToArray<float>();
    }

    private static HeadLossResult Result(DetectionLoss loss, float[] gc, float[] gb, Tensor cls, Tensor reg, double scale)
    {
        if (scale != 1)
        {
            for (int i = 0; i < gc.Length; i++) gc[i] = (float)(gc[i] * scale);
            for (int i = 0; i < gb.Length; i++) gb[i] = (float)(gb[i] * scale);
        }
        return new HeadLossResult(loss, Upload(gc, cls), Upload(gb, reg));
    }

    private static Tensor Upload(float[] g, Tensor like)
    {
        var t = Tensor.FromSpan<float>(g, like.Shape, like.Device);
        if (like.DType == DType.Float32) return t;
        using (t) return Op.Cast(t, like.DType);
    }
}
