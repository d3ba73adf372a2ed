using Osprey.Core.Backends;
using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Cuda.Dnn;
using Osprey.Cuda.Native;

namespace Osprey.Cuda;

// Convolutions through cuDNN 9's convolution API, NCHW or NHWC as the input comes. The forward algorithm
// is chosen per shape by measurement (cudnnFindConvolutionForwardAlgorithmEx on the first call) and cached
// with the descriptors. Epilogue: bias + ReLU (and a residual through cuDNN's z input with alpha2 = 1) fused
// in cudnnConvolutionBiasActivationForward; bias + identity fused only with IMPLICIT_PRECOMP_GEMM, as cuDNN
// allows; otherwise the convolution is followed by cudnnAddTensor (bias, residual) and cudnnActivationForward
// (ReLU), or this backend's element-wise kernel (other activations), all in place on y.
public sealed partial class CudaBackend
{
    /// <summary>Most workspace one convolution may use (its algorithm search included).</summary>
    private const ulong ConvMaxWorkspace = 1UL << 30;

    private readonly Lock _dnnLock = new();
    private readonly Dictionary<ConvKey, ConvPlan> _convPlans = [];
    private CuDnn? _dnn;
    private CuDnnGraph? _dnnGraph;
    private nint _dnnHandle;
    private nint _dnnStream;
    private long _convFusedFallbacks;

    /// <summary>How often a fused cuDNN convolution epilogue was refused (NOT_SUPPORTED) and run unfused instead.</summary>
    public long ConvFusedFallbacks => Interlocked.Read(ref _convFusedFallbacks);

    public unsafe void Conv2d(Tensor x, Tensor weight, Conv2dParams p, Epilogue epilogue, Tensor y)
    {
        if (y.Numel == 0) return;
        MakeCurrent();
        if (x.Shape[1] == 0)
        {
            ApplyEpilogueOnly(y, epilogue);
            return;
        }
        var (key, fusion, buffers, biasView, residualView) = Operands(x, weight, p, epilogue, y);
        using var bias = biasView;
        using var residual = residualView;
        var act = epilogue.Activation;

        lock (_dnnLock)
        {
            var dnn = DnnApi();
            var plan = PlanFor(dnn, key, fusion, buffers, y, null);
            using var ws = Workspace(plan.Graph?.WorkspaceBytes ?? (long)plan.WorkspaceBytes);
            nint wsp = (nint)(ws?.Pointer ?? 0);

            bool fusable = plan.Graph is null && bias is not null && !plan.FusedUnsupported
                && (act.Kind == UnaryKind.Relu || (act.Kind == UnaryKind.Identity && plan.Algo == CudnnConvFwdAlgo.ImplicitPrecompGemm));
            if (fusable)
            {
                float alpha1 = 1f, alpha2 = residual is null ? 0f : 1f;
                int status = dnn.ConvolutionBiasActivationForward(_dnnHandle, &alpha1, plan.X, x.DataPointer, plan.W, weight.DataPointer,
                    plan.Conv, plan.Algo, wsp, plan.WorkspaceBytes, &alpha2, plan.Y, residual?.DataPointer ?? y.DataPointer,
                    plan.Bias, bias!.DataPointer, act.Kind == UnaryKind.Relu ? plan.Relu : plan.Identity, plan.Y, y.DataPointer);
                if (status == 0) return;
                if (status / 1000 != CudnnStatusNotSupportedClass) dnn.Check(status, "cudnnConvolutionBiasActivationForward");
                plan.FusedUnsupported = true;
                Interlocked.Increment(ref _convFusedFallbacks);
            }

            float one = 1f, zero = 0f;
            var done = ConvFusion.None;
            if (plan.Graph is { } graph)
            {
                dnn.Check(graph.Run(_dnnHandle, buffers, wsp), "cudnnBackendExecute(convolution forward)");
                done = graph.Fused;
            }
            else
                dnn.Check(dnn.ConvolutionForward(_dnnHandle, &one, plan.X, x.DataPointer, plan.W, weight.DataPointer, plan.Conv, plan.Algo,
                    wsp, plan.WorkspaceBytes, &zero, plan.Y, y.DataPointer));
            if (bias is not null && !done.HasFlag(ConvFusion.Bias))
                dnn.Check(dnn.AddTensor(_dnnHandle, &one, plan.Bias, bias.DataPointer, &one, plan.Y, y.DataPointer));
            if (residual is not null && !done.HasFlag(ConvFusion.Residual))
                dnn.Check(dnn.AddTensor(_dnnHandle, &one, plan.Y, residual.DataPointer, &one, plan.Y, y.DataPointer));
            if (act.Kind == UnaryKind.Relu && !done.HasFlag(ConvFusion.Relu))
                dnn.Check(dnn.ActivationForward(_dnnHandle, plan.Relu, &one, plan.Y, y.DataPointer, &zero, plan.Y, y.DataPointer));
        }
        if (act.Kind is not (UnaryKind.Identity or UnaryKind.Relu))
        {
            using var flat = DenseFlat(y);
            Unary(act, flat, flat);
        }
    }

    /// <summary>
    /// The cached plan for a key, or a new one: with <paramref name="choice"/> null, chosen by measurement on these buffers
    /// (the backend API first for fp16/bf16/TF32, else the legacy search); otherwise the stored choice, without timing.
    /// Call under <see cref="_dnnLock"/>.
    /// </summary>
    private ConvPlan PlanFor(CuDnn dnn, in ConvKey key, ConvFusion fusion, in ConvBuffers buffers, Tensor y, ConvChoice? choice)
    {
        if (choice is null && _convPlans.TryGetValue(key, out var cached)) return cached;
        var plan = new ConvPlan(dnn, key);
        if (plan.OutN != y.Shape[0] || plan.OutC != y.Shape[1] || plan.OutH != y.Shape[2] || plan.OutW != y.Shape[3])
        {
            plan.Dispose();
            throw new CudaException($"conv2d: cuDNN computes output [{plan.OutN}, {plan.OutC}, {plan.OutH}, {plan.OutW}] for {key}, Op allocated {y.Shape}");
        }
        try
        {
            if (choice is not null) Apply(plan, key, fusion, choice);
            else
            {
                // exact fp32 stays on the legacy API with FMA math; everything else tries the backend API first
                if (key.DType != DType.Float32 || key.Tf32)
                {
                    if (fusion != ConvFusion.None)
                    {
                        plan.Graph = GraphConv.Build(_dnnGraph!, _dnnHandle, key, fusion, (long)ConvMaxWorkspace, buffers, Workspace, Stream);
                        if (plan.Graph is null) Interlocked.Increment(ref _convFusedFallbacks);
                    }
                    plan.Graph ??= GraphConv.Build(_dnnGraph!, _dnnHandle, key, ConvFusion.None, (long)ConvMaxWorkspace, buffers, Workspace, Stream);
                }
                if (plan.Graph is null)
                {
                    nuint cap = plan.MaxWorkspace(_dnnHandle, (nuint)ConvMaxWorkspace);
                    using var searchSpace = Workspace((long)cap);
                    plan.Search(_dnnHandle, buffers.X, buffers.W, buffers.Y, (nint)(searchSpace?.Pointer ?? 0), cap);
                }
            }
        }
        catch
        {
            plan.Dispose();
            throw;
        }
        if (_convPlans.Remove(key, out var old)) old.Dispose();
        _convPlans.Add(key, plan);
        return plan;
    }

    private unsafe void Apply(ConvPlan plan, in ConvKey key, ConvFusion fusion, ConvChoice c)
    {
        long version = (long)_dnn!.GetVersion();
        if (c.CudnnVersion != version)
            throw new CudaException($"conv2d: algorithm '{c}' was measured with cuDNN {c.CudnnVersion}, this is cuDNN {version}: rebuild the engine");
        if (c.WorkspaceBytes > (long)ConvMaxWorkspace)
            throw new CudaException($"conv2d: algorithm '{c}' asks for {c.WorkspaceBytes} workspace bytes (at most {ConvMaxWorkspace})");
        if (c.Api == ConvApi.Graph)
        {
            var f = (ConvFusion)c.Fused;
            if ((f & ~fusion) != 0)
                throw new CudaException($"conv2d: algorithm '{c}' fuses {f}, this convolution's epilogue has only {fusion}: rebuild the engine");
            plan.Graph = GraphConv.Pinned(_dnnGraph!, _dnnHandle, key, f, (CudnnHeurMode)c.Mode, c.Index, c.WorkspaceBytes);
        }
        else plan.Pin(_dnnHandle, (CudnnConvFwdAlgo)c.Index, (CudnnMathType)c.Mode, c.WorkspaceBytes);
    }

    /// <summary>The epilogue as contiguous tensors (views when they already are), the plan key and the operand addresses of a call.</summary>
    private (ConvKey Key, ConvFusion Fusion, ConvBuffers Buffers, Tensor? Bias, Tensor? Residual) Operands(Tensor x, Tensor weight, Conv2dParams p, Epilogue epilogue, Tensor y)
    {
        bool nhwc = !x.IsContiguous();
        var format = nhwc ? MemoryFormat.ChannelsLast : MemoryFormat.Contiguous;
        var bias = epilogue.Bias is { } eb ? Op.Contiguous(eb) : null;
        var residual = epilogue.Residual is { } er ? Op.Contiguous(er, format) : null;
        var fusion = (bias is null ? ConvFusion.None : ConvFusion.Bias) | (residual is null ? ConvFusion.None : ConvFusion.Residual)
            | (epilogue.Activation.Kind == UnaryKind.Relu ? ConvFusion.Relu : ConvFusion.None);
        var key = KeyOf(x, weight, p, fusion, Math.Min(Alignment(bias?.DataPointer ?? 0, 0), Alignment(residual?.DataPointer ?? 0, 0)));
        var buffers = new ConvBuffers(x.DataPointer, weight.DataPointer, y.DataPointer, bias?.DataPointer ?? 0, residual?.DataPointer ?? 0);
        return (key, fusion, buffers, bias, residual);
    }

    /// <summary>
    /// The algorithm the convolution of these operands runs with, as the text an engine file stores (see ConvChoice), and its
    /// workspace; null before its first run (the first run measures).
    /// </summary>
    public unsafe (string Choice, long WorkspaceBytes)? ConvAlgorithm(Tensor x, Tensor weight, Conv2dParams p, Epilogue epilogue, Tensor y)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(y);
        MakeCurrent();
        var (key, _, _, bias, residual) = Operands(x, weight, p, epilogue, y);
        using (bias)
        using (residual)
        lock (_dnnLock)
        {
            var dnn = DnnApi();
            if (!_convPlans.TryGetValue(key, out var plan)) return null;
            long version = (long)dnn.GetVersion();
            return plan.Graph is { } g
                ? (new ConvChoice(version, ConvApi.Graph, (int)g.Fused, (int)g.Mode, g.Index, g.WorkspaceBytes).ToString(), g.WorkspaceBytes)
                : (ConvChoice.LegacyText(version, plan.Algo, plan.MathMode, (long)plan.WorkspaceBytes), (long)plan.WorkspaceBytes);
        }
    }

    /// <summary>
    /// Makes the convolution of these operands run with a stored algorithm (text from <see cref="ConvAlgorithm"/>) without
    /// measuring; replaces a cached plan of the same shape. Returns its workspace bytes. Throws a <see cref="CudaException"/>
    /// (or <see cref="FormatException"/> for unreadable text) naming the choice when it cannot be used here.
    /// </summary>
    public long PinConvAlgorithm(Tensor x, Tensor weight, Conv2dParams p, Epilogue epilogue, Tensor y, string choice)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(y);
        var c = ConvChoice.Parse(choice);
        MakeCurrent();
        var (key, fusion, buffers, bias, residual) = Operands(x, weight, p, epilogue, y);
        using (bias)
        using (residual)
        lock (_dnnLock)
        {
            var plan = PlanFor(DnnApi(), key, fusion, buffers, y, c);
            return plan.Graph?.WorkspaceBytes ?? (long)plan.WorkspaceBytes;
        }
    }

    /// <summary>CUDNN_STATUS_NOT_SUPPORTED is 3000 and its cuDNN 9 sub-codes (shape, layout, data type...) are 3001-3999.</summary>
    private const int CudnnStatusNotSupportedClass = 3;

    private ConvKey KeyOf(Tensor x, Tensor weight, Conv2dParams p, ConvFusion fusion, int epilogueAlignment = 256) =>
        new(x.DType, !x.IsContiguous(), x.DType == DType.Float32 && Options.AllowTf32,
            x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3], weight.Shape[0], weight.Shape[2], weight.Shape[3],
            p.StrideH, p.StrideW, p.PadH, p.PadW, p.DilationH, p.DilationW, p.Groups,
            // outputs come fresh from the allocator (256-byte aligned); inputs may be offset views
            Math.Min(Math.Min(Alignment(x.DataPointer, 0), Alignment(weight.DataPointer, 0)), Math.Min(epilogueAlignment, 16)), fusion);

    /// <summary>What runs the convolution of x by w with p, its workspace and measured time (null before its first run).</summary>
    internal (string Engine, ulong WorkspaceBytes, float MeasuredMs)? ConvChoiceFor(Tensor x, Tensor weight, Conv2dParams p, ConvFusion fusion = ConvFusion.None)
    {
        var key = KeyOf(x, weight, p, fusion);
        lock (_dnnLock)
        {
            if (!_convPlans.TryGetValue(key, out var plan)) return null;
            return plan.Graph is { } g ? (plan.Describe(), (ulong)g.WorkspaceBytes, g.MeasuredMs) : (plan.Describe(), (ulong)plan.WorkspaceBytes, plan.MeasuredMs);
        }
    }

    private CuDnn DnnApi()
    {
        if (_dnn is null)
        {
            nint library = NativeLibraries.Load(NativeLibraries.Cudnn);
            var api = new CuDnn(library);
            _dnnGraph = new CuDnnGraph(api, library);
            MakeCurrent();
            nint h;
            unsafe { api.Check(api.Create(&h)); }
            _dnnHandle = h;
            _dnn = api;
        }
        if (_dnnStream != Stream.Handle)
        {
            unsafe { _dnn.Check(_dnn.SetStream(_dnnHandle, Stream.Handle)); }
            _dnnStream = Stream.Handle;
        }
        return _dnn;
    }

    private void DisposeDnn()
    {
        lock (_dnnLock)
        {
            foreach (var plan in _convPlans.Values) plan.Dispose();
            _convPlans.Clear();
            DisposeConvBackwardPlans();
            if (_dnn is not null && _dnnHandle != 0)
            {
                unsafe { _dnn.Destroy(_dnnHandle); }
                _dnnHandle = 0;
            }
        }
    }
}
