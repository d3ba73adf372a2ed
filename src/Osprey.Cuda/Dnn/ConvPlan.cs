using Osprey.Core.Tensors;
using Osprey.Cuda.Native;

namespace Osprey.Cuda.Dnn;

/// <summary>Everything that decides a convolution's descriptors and best algorithm (the plan cache key).</summary>
internal readonly record struct ConvKey(
    DType DType, bool Nhwc, bool Tf32,
    int N, int C, int H, int W,
    int O, int KH, int KW,
    int StrideH, int StrideW, int PadH, int PadW, int DilationH, int DilationW, int Groups,
    int Alignment, ConvFusion Fusion);

/// <summary>Epilogue steps a backend-API graph may fuse after the convolution: y = relu?(conv + bias? + residual?).</summary>
[Flags]
internal enum ConvFusion
{
    None = 0,
    Bias = 1,
    Residual = 2,
    Relu = 4,
}

/// <summary>
/// cuDNN descriptors for one <see cref="ConvKey"/> and the forward algorithm chosen by measurement
/// (cudnnFindConvolutionForwardAlgorithmEx on the first call's real buffers). Created once per shape, reused.
/// </summary>
internal sealed unsafe class ConvPlan : IDisposable
{
    private readonly CuDnn _dnn;
    public readonly nint X, W, Y, Bias, Conv, Relu, Identity;
    public readonly ConvKey Key;
    public CudnnConvFwdAlgo Algo { get; private set; }
    public nuint WorkspaceBytes { get; private set; }
    /// <summary>Time cuDNN measured for the chosen algorithm, in milliseconds (for reports).</summary>
    public float MeasuredMs { get; private set; }
    /// <summary>Set when cudnnConvolutionBiasActivationForward answered NOT_SUPPORTED for this plan; the plan then runs the unfused sequence.</summary>
    public bool FusedUnsupported { get; set; }
    public bool Searched { get; private set; }
    /// <summary>The backend-API plan that runs the convolution itself, when cuDNN offered one (fp16/bf16, or fp32 with TF32).</summary>
    public GraphConv? Graph { get; set; }

    /// <summary>What runs this shape, for reports: the backend-API plan or the legacy algorithm.</summary>
    public string Describe() => Graph is { } g
        ? $"graph API{(g.Fused != ConvFusion.None ? $" fused {g.Fused}" : "")} ({g.Candidates} plans timed)"
        : $"legacy {Algo}";

    public ConvPlan(CuDnn dnn, in ConvKey k)
    {
        _dnn = dnn;
        Key = k;
        try
        {
            var type = DataType(k.DType);
            var format = k.Nhwc ? CudnnTensorFormat.Nhwc : CudnnTensorFormat.Nchw;
            nint d;
            dnn.Check(dnn.CreateTensorDescriptor(&d)); X = d;
            dnn.Check(dnn.SetTensor4dDescriptor(X, format, type, k.N, k.C, k.H, k.W));
            dnn.Check(dnn.CreateFilterDescriptor(&d)); W = d;
            dnn.Check(dnn.SetFilter4dDescriptor(W, type, format, k.O, k.C / k.Groups, k.KH, k.KW));
            dnn.Check(dnn.CreateConvolutionDescriptor(&d)); Conv = d;
            dnn.Check(dnn.SetConvolution2dDescriptor(Conv, k.PadH, k.PadW, k.StrideH, k.StrideW, k.DilationH, k.DilationW,
                CudnnConvolutionMode.CrossCorrelation, CudnnDataType.Float));
            dnn.Check(dnn.SetConvolutionGroupCount(Conv, k.Groups));
            dnn.Check(dnn.SetConvolutionMathType(Conv, MathType(k)));
            int on, oc, oh, ow;
            dnn.Check(dnn.GetConvolution2dForwardOutputDim(Conv, X, W, &on, &oc, &oh, &ow));
            dnn.Check(dnn.CreateTensorDescriptor(&d)); Y = d;
            dnn.Check(dnn.SetTensor4dDescriptor(Y, format, type, on, oc, oh, ow));
            OutN = on; OutC = oc; OutH = oh; OutW = ow;
            dnn.Check(dnn.CreateTensorDescriptor(&d)); Bias = d;
            dnn.Check(dnn.SetTensor4dDescriptor(Bias, CudnnTensorFormat.Nchw, type, 1, k.O, 1, 1));
            dnn.Check(dnn.CreateActivationDescriptor(&d)); Relu = d;
            dnn.Check(dnn.SetActivationDescriptor(Relu, CudnnActivationMode.Relu, 1, 0.0));
            dnn.Check(dnn.CreateActivationDescriptor(&d)); Identity = d;
            dnn.Check(dnn.SetActivationDescriptor(Identity, CudnnActivationMode.Identity, 1, 0.0));
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public int OutN { get; }
    public int OutC { get; }
    public int OutH { get; }
    public int OutW { get; }

    public static CudnnDataType DataType(DType t) => t switch
    {
        DType.Float32 => CudnnDataType.Float,
        DType.Float16 => CudnnDataType.Half,
        DType.BFloat16 => CudnnDataType.BFloat16,
        _ => throw new CudaException($"conv2d: cuDNN path has no dtype {t.Name()}"),
    };

    /// <summary>fp16/bf16: tensor cores; fp32: plain FMA (exact fp32) unless TF32 was allowed.</summary>
    private static CudnnMathType MathType(in ConvKey k) =>
        k.DType != DType.Float32 ? CudnnMathType.TensorOp : k.Tf32 ? CudnnMathType.Default : CudnnMathType.Fma;

    /// <summary>Largest workspace any forward algorithm asks for, up to <paramref name="cap"/> bytes.</summary>
    public nuint MaxWorkspace(nint handle, nuint cap)
    {
        nuint max = 0;
        for (int a = 0; a <= (int)CudnnConvFwdAlgo.WinogradNonfused; a++)
        {
            nuint bytes = 0;
            if (_dnn.GetConvolutionForwardWorkspaceSize(handle, X, W, Conv, Y, (CudnnConvFwdAlgo)a, &bytes) != 0) continue; // algorithm not applicable
            if (bytes <= cap && bytes > max) max = bytes;
        }
        return max;
    }

    /// <summary>Times every applicable algorithm on these buffers (y is overwritten) and keeps the fastest that fits the workspace.</summary>
    public void Search(nint handle, nint x, nint w, nint y, nint workspace, nuint workspaceBytes)
    {
        const int Max = 16;
        var perf = stackalloc CudnnConvFwdAlgoPerf[Max];
        int count = 0;
        _dnn.Check(_dnn.FindConvolutionForwardAlgorithmEx(handle, X, x, W, w, Conv, Y, y, Max, &count, perf, workspace, workspaceBytes));
        for (int i = 0; i < count; i++)
        {
            if (perf[i].Status != 0 || perf[i].Memory > workspaceBytes) continue;
            Algo = perf[i].Algo;
            WorkspaceBytes = perf[i].Memory;
            MeasuredMs = perf[i].Time;
            // fp32 without TF32 must stay on FMA math; otherwise use the math type the algorithm was timed with
            MathMode = Key.DType == DType.Float32 && !Key.Tf32 ? CudnnMathType.Fma : perf[i].MathType;
            if (!(Key.DType == DType.Float32 && !Key.Tf32))
                _dnn.Check(_dnn.SetConvolutionMathType(Conv, perf[i].MathType));
            Searched = true;
            return;
        }
        throw new CudaException($"conv2d: cuDNN found no usable forward algorithm for {Key} ({count} candidates, workspace {workspaceBytes} bytes)");
    }

    /// <summary>The math type the chosen legacy algorithm runs with (stored in engine files).</summary>
    public CudnnMathType MathMode { get; private set; }

    /// <summary>
    /// Uses a stored legacy algorithm without timing; a <see cref="CudaException"/> when it does not apply to this
    /// convolution or needs another workspace than when it was measured.
    /// </summary>
    public void Pin(nint handle, CudnnConvFwdAlgo algo, CudnnMathType math, long storedWorkspace)
    {
        if (Key.DType == DType.Float32 && !Key.Tf32 && math != CudnnMathType.Fma)
            throw new CudaException($"conv2d: stored math type {math} for an exact fp32 convolution {Key} (only Fma): rebuild the engine");
        _dnn.Check(_dnn.SetConvolutionMathType(Conv, math));
        nuint bytes = 0;
        int status = _dnn.GetConvolutionForwardWorkspaceSize(handle, X, W, Conv, Y, algo, &bytes);
        if (status != 0)
            throw new CudaException($"conv2d: stored algorithm {algo} does not apply to {Key} (cuDNN status {status}): rebuild the engine");
        if ((long)bytes != storedWorkspace)
            throw new CudaException($"conv2d: stored algorithm {algo} needs {bytes} workspace bytes here, {storedWorkspace} when measured: rebuild the engine");
        Algo = algo;
        MathMode = math;
        WorkspaceBytes = bytes;
        MeasuredMs = float.NaN;
        Searched = true;
    }

    public void Dispose()
    {
        Graph?.Dispose();
        Graph = null;
        if (X != 0) _dnn.DestroyTensorDescriptor(X);
        if (Y != 0) _dnn.DestroyTensorDescriptor(Y);
        if (Bias != 0) _dnn.DestroyTensorDescriptor(Bias);
        if (W != 0) _dnn.DestroyFilterDescriptor(W);
        if (Conv != 0) _dnn.DestroyConvolutionDescriptor(Conv);
        if (Relu != 0) _dnn.DestroyActivationDescriptor(Relu);
        if (Identity != 0) _dnn.DestroyActivationDescriptor(Identity);
    }
}
