using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Cuda;
using Osprey.Cuda.Detection;
using Osprey.Detection.Boxes;
using Osprey.Detection.Training.Matching;

namespace Osprey.Detection.Training.Losses;

/// <summary>
/// RetinaNet's and SSD's training losses entirely on a CUDA device (Kernels/detect_loss.cu through <see cref="LossKernels"/>):
/// the ground truth goes up as one small array, anchors are matched on the device (torchvision's Matcher with
/// allow_low_quality_matches, ODTK's 0.5 / 0.4 without, SSDMatcher's best-anchor forcing), the classification loss is one fused
/// kernel (focal: loss and gradient together; SSD: log-sum-exp, hard-negative mining by radix select, gradient), the box loss one
/// more, and the loss comes back only when <see cref="HeadLossResult.Loss"/> is read (one 16-byte download). Same semantics as
/// <see cref="RetinaNetLoss"/> and <see cref="SsdLoss"/> in float32 element math with float64 sums (the CPU losses use float64
/// element math), and the IoUs and box codes round as the CPU's float32 (no FMA contraction).
/// </summary>
internal static class DeviceLoss
{
    /// <summary>Whether the fused path computes this RetinaNet loss: float32/float16/bfloat16 head outputs on CUDA (the kernels
    /// read no other dtype), torchvision box coding, L1 or smooth L1.</summary>
    public static bool Supports(Tensor classLogits, RetinaNetLossOptions options) =>
        OnCuda(classLogits) && options.BoxLoss != BoxLossKind.GIoU && options.Coder.Coding == BoxCoding.Torchvision;

    /// <summary>Whether the fused path computes this SSD loss (float32/float16/bfloat16 head outputs on CUDA, torchvision box coding).</summary>
    public static bool Supports(Tensor classLogits, SsdLossOptions options) =>
        OnCuda(classLogits) && options.Coder.Coding == BoxCoding.Torchvision;

    private static bool OnCuda(Tensor t) =>
        t.Device.Type == DeviceType.Cuda && t.DType is (DType.Float32 or DType.Float16 or DType.BFloat16);

    /// <summary>The matching of a batch on the device: matches [N, A] (ground-truth index, <see cref="Matcher.Background"/> or
    /// <see cref="Matcher.Ignore"/>), classes [N, A] (the matched label, <paramref name="background"/> otherwise) and foreground
    /// counts [N], all int32 on <paramref name="anchors"/>' device; <paramref name="packed"/>: the uploaded targets.</summary>
    public static (Tensor Matches, Tensor Classes, Tensor Foreground, Tensor Packed, int G) Match(Tensor anchors, IReadOnlyList<DetectionTarget> targets,
        MatcherOptions matcher, int background)
    {
        ArgumentNullException.ThrowIfNull(anchors);
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(matcher);
        if (matcher.Low > matcher.High) throw new ArgumentException($"matcher: low threshold {matcher.Low} above high threshold {matcher.High}");
        if (anchors.Rank != 2 || anchors.Shape[1] != 4 || anchors.DType != DType.Float32 || !anchors.IsContiguous())
            throw new ArgumentException($"device loss: anchors {anchors.Shape} {anchors.DType.Name()} (need contiguous [A, 4] float32)");
        int n = targets.Count, a = anchors.Shape[0];
        var dev = anchors.Device;
        var (packed, g) = Pack(targets, dev);
        var kernels = Kernels(anchors);
        using var best = Tensor.Empty(new Shape(n * g), DType.Int64, dev);
        Tensor? matches = null, classes = null, fg = null;
        try
        {
            matches = Tensor.Empty(new Shape(n, a), DType.Int32, dev);
            classes = Tensor.Empty(new Shape(n, a), DType.Int32, dev);
            fg = Tensor.Empty(new Shape(n), DType.Int32, dev);
            kernels.Zero(Ptr(best), 2L * n * g);
            kernels.Zero(Ptr(fg), n);
            var p = new LossMatchParams
            {
                N = n, A = a, G = g, High = matcher.High, Low = matcher.Low, LowQuality = matcher.AllowLowQualityMatches ? 1 : 0,
                ForceBest = matcher.ForceBestAnchor ? 1 : 0, Background = background,
            };
            kernels.Match(Ptr(anchors), Ptr(packed), p, Ptr(best), Ptr(matches), Ptr(classes), Ptr(fg));
            return (matches, classes, fg, packed, g);
        }
        catch
        {
            matches?.Dispose();
            classes?.Dispose();
            fg?.Dispose();
            packed.Dispose();
            throw;
        }
    }

    /// <summary>torchvision's RetinaNet loss (<see cref="RetinaNetLoss"/>) of [N, A, K] logits and [N, A, 4] codes against
    /// [A, 4] float32 anchors on the same device; gradients in the outputs' dtypes, times <paramref name="gradScale"/>.</summary>
    public static HeadLossResult RetinaNet(Tensor classLogits, Tensor boxRegression, Tensor anchors, IReadOnlyList<DetectionTarget> targets,
        RetinaNetLossOptions options, double gradScale, Action<string>? mark)
    {
        int n = classLogits.Shape[0], a = classLogits.Shape[1], k = classLogits.Shape[2];
        CheckAnchors(anchors, a, classLogits.Device, "retinanet loss");
        CheckRegression(boxRegression, "retinanet loss");
        for (int i = 0; i < n; i++) targets[i].Check(k, $"retinanet loss: target {i}");
        using var scope = new TensorScope();
        var x = Dense(classLogits);
        var r = Dense(boxRegression);
        var (matches, classes, fg, packed, g) = Match(anchors, targets, options.Matcher, -1);
        mark?.Invoke("loss.match");
        var kernels = Kernels(anchors);
        var dev = anchors.Device;
        int clsParts = LossKernels.Blocks((long)n * a * k), boxParts = LossKernels.Blocks((long)n * a);
        var partials = Tensor.Empty(new Shape(clsParts + boxParts), DType.Int64, dev);
        var classGrad = Tensor.Empty(classLogits.Shape, x.DType, dev);
        var fp = new LossFocalParams { N = n, A = a, K = k, Alpha = options.Alpha, Gamma = options.Gamma, GradScale = gradScale };
        kernels.Focal(x.ElementSize, x.DType == DType.BFloat16, Ptr(x), Ptr(matches), Ptr(classes), Ptr(fg), Ptr(classGrad), fp, Ptr(partials));
        mark?.Invoke("loss.cls");
        var boxGrad = Tensor.Empty(boxRegression.Shape, r.DType, dev);
        var bp = BoxParams(n, a, g, options.Coder, options.BoxLoss == BoxLossKind.SmoothL1 ? 1 : 0, options.Beta, perImage: true, gradScale);
        kernels.Box(r.ElementSize, r.DType == DType.BFloat16, Ptr(r), Ptr(anchors), Ptr(packed), Ptr(matches), Ptr(fg), Ptr(boxGrad), bp,
            Ptr(partials) + 8UL * (ulong)clsParts);
        var output = Tensor.Empty(new Shape(2), DType.Int64, dev);
        kernels.Finish(Ptr(partials), clsParts, boxParts, Ptr(output));
        mark?.Invoke("loss.box");
        return new HeadLossResult(scope.Keep(output), scope.Keep(classGrad), scope.Keep(boxGrad));
    }

    /// <summary>torchvision's SSD loss (<see cref="SsdLoss"/>): see <see cref="RetinaNet"/>.</summary>
    public static HeadLossResult Ssd(Tensor classLogits, Tensor boxRegression, Tensor anchors, IReadOnlyList<DetectionTarget> targets,
        SsdLossOptions options, double gradScale, Action<string>? mark)
    {
        int n = classLogits.Shape[0], a = classLogits.Shape[1], k = classLogits.Shape[2];
        CheckAnchors(anchors, a, classLogits.Device, "ssd loss");
        CheckRegression(boxRegression, "ssd loss");
        for (int i = 0; i < n; i++) targets[i].Check(k, $"ssd loss: target {i}");
        if (options.NegativeToPositive < 0) throw new ArgumentException($"ssd loss: negative-to-positive ratio {options.NegativeToPositive}");
        using var scope = new TensorScope();
        var x = Dense(classLogits);
        var r = Dense(boxRegression);
        var (matches, classes, fg, packed, g) = Match(anchors, targets, options.Matcher, 0);
        mark?.Invoke("loss.match");
        var kernels = Kernels(anchors);
        var dev = anchors.Device;
        int rows = n * a, boxParts = LossKernels.Blocks(rows);
        var partials = Tensor.Empty(new Shape(n + boxParts), DType.Int64, dev);
        var ce = Tensor.Empty(new Shape(rows), DType.Float32, dev);
        var lse = Tensor.Empty(new Shape(rows), DType.Float32, dev);
        var weight = Tensor.Empty(new Shape(rows), DType.Float32, dev);
        bool bf = x.DType == DType.BFloat16;
        kernels.SsdCrossEntropy(x.ElementSize, bf, Ptr(x), Ptr(classes), Ptr(ce), Ptr(lse), rows, k);
        kernels.SsdMine(Ptr(ce), Ptr(classes), Ptr(fg), Ptr(weight), Ptr(partials), n, a, options.NegativeToPositive, gradScale);
        var classGrad = Tensor.Empty(classLogits.Shape, x.DType, dev);
        kernels.SsdGrad(x.ElementSize, bf, Ptr(x), Ptr(classes), Ptr(lse), Ptr(weight), Ptr(classGrad), rows, k);
        mark?.Invoke("loss.cls");
        var boxGrad = Tensor.Empty(boxRegression.Shape, r.DType, dev);
        var bp = BoxParams(n, a, g, options.Coder, 1, options.Beta, perImage: false, gradScale);
        kernels.Box(r.ElementSize, r.DType == DType.BFloat16, Ptr(r), Ptr(anchors), Ptr(packed), Ptr(matches), Ptr(fg), Ptr(boxGrad), bp,
            Ptr(partials) + 8UL * (ulong)n);
        var output = Tensor.Empty(new Shape(2), DType.Int64, dev);
        kernels.Finish(Ptr(partials), n, boxParts, Ptr(output));
        mark?.Invoke("loss.box");
        return new HeadLossResult(scope.Keep(output), scope.Keep(classGrad), scope.Keep(boxGrad));
    }

    private static LossBoxParams BoxParams(int n, int a, int g, BoxCoder coder, int kind, float beta, bool perImage, double gradScale) => new()
    {
        N = n, A = a, G = g, Wx = coder.Wx, Wy = coder.Wy, Ww = coder.Ww, Wh = coder.Wh, Beta = beta, Kind = kind,
        PerImage = perImage ? 1 : 0, GradScale = gradScale,
    };

    /// <summary>The targets as one float array (boxes [N, G, 4], labels [N, G], counts [N]) on the device, and G.</summary>
    private static (Tensor Packed, int G) Pack(IReadOnlyList<DetectionTarget> targets, Device device)
    {
        int n = targets.Count, g = 1;
        for (int i = 0; i < n; i++)
        {
            var t = targets[i] ?? throw new ArgumentException($"device loss: target {i} is null");
            if (t.Boxes.Length != t.Labels.Length * 4)
                throw new ArgumentException($"device loss: target {i} has {t.Boxes.Length} box floats for {t.Labels.Length} labels");
            g = Math.Max(g, t.Count);
        }
        var host = new float[(long)n * g * 5 + n];
        long labels = (long)n * g * 4, counts = (long)n * g * 5;
        for (int i = 0; i < n; i++)
        {
            var t = targets[i];
            t.Boxes.AsSpan().CopyTo(host.AsSpan((int)((long)i * g * 4)));
            for (int q = 0; q < t.Count; q++) host[labels + (long)i * g + q] = t.Labels[q];
            host[counts + i] = t.Count;
        }
        return (Tensor.FromSpan<float>(host, new Shape(host.Length), device), g);
    }

    private static void CheckAnchors(Tensor anchors, int a, Device device, string what)
    {
        ArgumentNullException.ThrowIfNull(anchors);
        if (anchors.Rank != 2 || anchors.Shape[0] != a || anchors.Shape[1] != 4)
            throw new ArgumentException($"{what}: anchors {anchors.Shape} for {a} anchors per image (need [{a}, 4])");
        if (anchors.Device != device) throw new ArgumentException($"{what}: anchors on {anchors.Device}, head outputs on {device}");
    }

    private static void CheckRegression(Tensor boxRegression, string what)
    {
        if (!OnCuda(boxRegression))
            throw new ArgumentException($"{what}: box regression {boxRegression.DType.Name()} on {boxRegression.Device} (the device loss reads float32, float16 or bfloat16 on CUDA)");
    }

    /// <summary>The tensor itself when contiguous, else a contiguous copy (owned by the current scope).</summary>
    private static Tensor Dense(Tensor t) => t.IsContiguous() ? t : Op.Contiguous(t);

    private static LossKernels Kernels(Tensor onDevice) => new((CudaBackend)onDevice.Backend);

    private static ulong Ptr(Tensor t) => (ulong)t.DataPointer;
}
