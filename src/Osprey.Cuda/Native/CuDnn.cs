using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Osprey.Cuda.Native;

// cuDNN 9 (libcudnn.so.9, the shim that loads libcudnn_cnn/ops/graph on demand) through unmanaged
// function pointers: the "legacy" descriptor API of cudnn_cnn.h / cudnn_ops.h (tensor, filter and
// convolution descriptors, Find, cudnnConvolutionForward, cudnnConvolutionBiasActivationForward,
// cudnnAddTensor, cudnnActivationForward; cudnnConvolutionBackwardData/Filter and their Find/workspace queries for training). CudaBackend.Conv2d runs exact fp32 on it; fp16/bf16/TF32 go
// through the backend (graph) API in CuDnnGraph.cs, whose engines are several times faster on Hopper.
// Values are those of cudnn_graph.h / cudnn_ops.h / cudnn_cnn.h in cuDNN 9.

internal enum CudnnDataType
{
    Float = 0,
    Double = 1,
    Half = 2,
    BFloat16 = 9,
}

internal enum CudnnTensorFormat
{
    Nchw = 0,
    Nhwc = 1,
}

internal enum CudnnMathType
{
    Default = 0,
    TensorOp = 1,
    TensorOpAllowConversion = 2,
    Fma = 3,
}

internal enum CudnnConvolutionMode
{
    Convolution = 0,
    CrossCorrelation = 1,
}

internal enum CudnnConvFwdAlgo
{
    ImplicitGemm = 0,
    ImplicitPrecompGemm = 1,
    Gemm = 2,
    Direct = 3,
    Fft = 4,
    FftTiling = 5,
    Winograd = 6,
    WinogradNonfused = 7,
}

internal enum CudnnActivationMode
{
    Sigmoid = 0,
    Relu = 1,
    Tanh = 2,
    ClippedRelu = 3,
    Elu = 4,
    Identity = 5,
    Swish = 6,
}

internal enum CudnnConvBwdDataAlgo
{
    Algo0 = 0,
    Algo1 = 1,
    Fft = 2,
    FftTiling = 3,
    Winograd = 4,
    WinogradNonfused = 5,
}

internal enum CudnnConvBwdFilterAlgo
{
    Algo0 = 0,
    Algo1 = 1,
    Fft = 2,
    Algo3 = 3,
    Winograd = 4,
    WinogradNonfused = 5,
    FftTiling = 6,
}

/// <summary>
/// cudnnConvolutionBwdDataAlgoPerf_t and cudnnConvolutionBwdFilterAlgoPerf_t (48 bytes each, the layout of the
/// forward record): Algo holds the backward algorithm's enum value.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct CudnnConvBwdAlgoPerf
{
    public int Algo;
    public int Status;
    public float Time;
    public nuint Memory;
    public int Determinism;
    public CudnnMathType MathType;
    public fixed int Reserved[3];
}

/// <summary>cudnnConvolutionFwdAlgoPerf_t (48 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct CudnnConvFwdAlgoPerf
{
    public CudnnConvFwdAlgo Algo;
    public int Status;
    public float Time;
    public nuint Memory;
    public int Determinism;
    public CudnnMathType MathType;
    public fixed int Reserved[3];
}

/// <summary>The cuDNN entry points, loaded from one library handle.</summary>
internal sealed unsafe class CuDnn
{
    public readonly delegate* unmanaged<nuint> GetVersion;
    public readonly delegate* unmanaged<int, byte*> GetErrorString;
    public readonly delegate* unmanaged<byte*, nuint, void> GetLastErrorString;
    public readonly delegate* unmanaged<nint*, int> Create;
    public readonly delegate* unmanaged<nint, int> Destroy;
    public readonly delegate* unmanaged<nint, nint, int> SetStream;
    public readonly delegate* unmanaged<nint*, int> CreateTensorDescriptor;
    public readonly delegate* unmanaged<nint, int> DestroyTensorDescriptor;
    public readonly delegate* unmanaged<nint, CudnnTensorFormat, CudnnDataType, int, int, int, int, int> SetTensor4dDescriptor;
    public readonly delegate* unmanaged<nint*, int> CreateFilterDescriptor;
    public readonly delegate* unmanaged<nint, int> DestroyFilterDescriptor;
    public readonly delegate* unmanaged<nint, CudnnDataType, CudnnTensorFormat, int, int, int, int, int> SetFilter4dDescriptor;
    public readonly delegate* unmanaged<nint*, int> CreateConvolutionDescriptor;
    public readonly delegate* unmanaged<nint, int> DestroyConvolutionDescriptor;
    public readonly delegate* unmanaged<nint, int, int, int, int, int, int, CudnnConvolutionMode, CudnnDataType, int> SetConvolution2dDescriptor;
    public readonly delegate* unmanaged<nint, int, int> SetConvolutionGroupCount;
    public readonly delegate* unmanaged<nint, CudnnMathType, int> SetConvolutionMathType;
    public readonly delegate* unmanaged<nint, nint, nint, int*, int*, int*, int*, int> GetConvolution2dForwardOutputDim;
    public readonly delegate* unmanaged<nint, int*, int> GetConvolutionForwardAlgorithmMaxCount;
    public readonly delegate* unmanaged<nint, nint, nint, nint, nint, nint, nint, nint, int, int*, CudnnConvFwdAlgoPerf*, nint, nuint, int> FindConvolutionForwardAlgorithmEx;
    public readonly delegate* unmanaged<nint, nint, nint, nint, nint, CudnnConvFwdAlgo, nuint*, int> GetConvolutionForwardWorkspaceSize;
    public readonly delegate* unmanaged<nint, void*, nint, nint, nint, nint, nint, CudnnConvFwdAlgo, nint, nuint, void*, nint, nint, int> ConvolutionForward;
    public readonly delegate* unmanaged<nint, void*, nint, nint, nint, nint, nint, CudnnConvFwdAlgo, nint, nuint, void*, nint, nint, nint, nint, nint, nint, nint, int> ConvolutionBiasActivationForward;
    public readonly delegate* unmanaged<nint, nint, nint, nint, nint, nint, nint, nint, int, int*, CudnnConvBwdAlgoPerf*, nint, nuint, int> FindConvolutionBackwardDataAlgorithmEx;
    public readonly delegate* unmanaged<nint, nint, nint, nint, nint, CudnnConvBwdDataAlgo, nuint*, int> GetConvolutionBackwardDataWorkspaceSize;
    public readonly delegate* unmanaged<nint, void*, nint, nint, nint, nint, nint, CudnnConvBwdDataAlgo, nint, nuint, void*, nint, nint, int> ConvolutionBackwardData;
    public readonly delegate* unmanaged<nint, nint, nint, nint, nint, nint, nint, nint, int, int*, CudnnConvBwdAlgoPerf*, nint, nuint, int> FindConvolutionBackwardFilterAlgorithmEx;
    public readonly delegate* unmanaged<nint, nint, nint, nint, nint, CudnnConvBwdFilterAlgo, nuint*, int> GetConvolutionBackwardFilterWorkspaceSize;
    public readonly delegate* unmanaged<nint, void*, nint, nint, nint, nint, nint, CudnnConvBwdFilterAlgo, nint, nuint, void*, nint, nint, int> ConvolutionBackwardFilter;
    public readonly delegate* unmanaged<nint*, int> CreateActivationDescriptor;
    public readonly delegate* unmanaged<nint, int> DestroyActivationDescriptor;
    public readonly delegate* unmanaged<nint, CudnnActivationMode, int, double, int> SetActivationDescriptor;
    public readonly delegate* unmanaged<nint, nint, void*, nint, nint, void*, nint, nint, int> ActivationForward;
    public readonly delegate* unmanaged<nint, void*, nint, nint, void*, nint, nint, int> AddTensor;

    public CuDnn(nint library)
    {
        GetVersion = (delegate* unmanaged<nuint>)Export(library, "cudnnGetVersion");
        GetErrorString = (delegate* unmanaged<int, byte*>)Export(library, "cudnnGetErrorString");
        GetLastErrorString = (delegate* unmanaged<byte*, nuint, void>)Export(library, "cudnnGetLastErrorString");
        Create = (delegate* unmanaged<nint*, int>)Export(library, "cudnnCreate");
        Destroy = (delegate* unmanaged<nint, int>)Export(library, "cudnnDestroy");
        SetStream = (delegate* unmanaged<nint, nint, int>)Export(library, "cudnnSetStream");
        CreateTensorDescriptor = (delegate* unmanaged<nint*, int>)Export(library, "cudnnCreateTensorDescriptor");
        DestroyTensorDescriptor = (delegate* unmanaged<nint, int>)Export(library, "cudnnDestroyTensorDescriptor");
        SetTensor4dDescriptor = (delegate* unmanaged<nint, CudnnTensorFormat, CudnnDataType, int, int, int, int, int>)Export(library, "cudnnSetTensor4dDescriptor");
        CreateFilterDescriptor = (delegate* unmanaged<nint*, int>)Export(library, "cudnnCreateFilterDescriptor");
        DestroyFilterDescriptor = (delegate* unmanaged<nint, int>)Export(library, "cudnnDestroyFilterDescriptor");
        SetFilter4dDescriptor = (delegate* unmanaged<nint, CudnnDataType, CudnnTensorFormat, int, int, int, int, int>)Export(library, "cudnnSetFilter4dDescriptor");
        CreateConvolutionDescriptor = (delegate* unmanaged<nint*, int>)Export(library, "cudnnCreateConvolutionDescriptor");
        DestroyConvolutionDescriptor = (delegate* unmanaged<nint, int>)Export(library, "cudnnDestroyConvolutionDescriptor");
        SetConvolution2dDescriptor = (delegate* unmanaged<nint, int, int, int, int, int, int, CudnnConvolutionMode, CudnnDataType, int>)Export(library, "cudnnSetConvolution2dDescriptor");
        SetConvolutionGroupCount = (delegate* unmanaged<nint, int, int>)Export(library, "cudnnSetConvolutionGroupCount");
        SetConvolutionMathType = (delegate* unmanaged<nint, CudnnMathType, int>)Export(library, "cudnnSetConvolutionMathType");
        GetConvolution2dForwardOutputDim = (delegate* unmanaged<nint, nint, nint, int*, int*, int*, int*, int>)Export(library, "cudnnGetConvolution2dForwardOutputDim");
        GetConvolutionForwardAlgorithmMaxCount = (delegate* unmanaged<nint, int*, int>)Export(library, "cudnnGetConvolutionForwardAlgorithmMaxCount");
        FindConvolutionForwardAlgorithmEx = (delegate* unmanaged<nint, nint, nint, nint, nint, nint, nint, nint, int, int*, CudnnConvFwdAlgoPerf*, nint, nuint, int>)Export(library, "cudnnFindConvolutionForwardAlgorithmEx");
        GetConvolutionForwardWorkspaceSize = (delegate* unmanaged<nint, nint, nint, nint, nint, CudnnConvFwdAlgo, nuint*, int>)Export(library, "cudnnGetConvolutionForwardWorkspaceSize");
        ConvolutionForward = (delegate* unmanaged<nint, void*, nint, nint, nint, nint, nint, CudnnConvFwdAlgo, nint, nuint, void*, nint, nint, int>)Export(library, "cudnnConvolutionForward");
        ConvolutionBiasActivationForward = (delegate* unmanaged<nint, void*, nint, nint, nint, nint, nint, CudnnConvFwdAlgo, nint, nuint, void*, nint, nint, nint, nint, nint, nint, nint, int>)Export(library, "cudnnConvolutionBiasActivationForward");
        FindConvolutionBackwardDataAlgorithmEx = (delegate* unmanaged<nint, nint, nint, nint, nint, nint, nint, nint, int, int*, CudnnConvBwdAlgoPerf*, nint, nuint, int>)Export(library, "cudnnFindConvolutionBackwardDataAlgorithmEx");
        GetConvolutionBackwardDataWorkspaceSize = (delegate* unmanaged<nint, nint, nint, nint, nint, CudnnConvBwdDataAlgo, nuint*, int>)Export(library, "cudnnGetConvolutionBackwardDataWorkspaceSize");
        ConvolutionBackwardData = (delegate* unmanaged<nint, void*, nint, nint, nint, nint, nint, CudnnConvBwdDataAlgo, nint, nuint, void*, nint, nint, int>)Export(library, "cudnnConvolutionBackwardData");
        FindConvolutionBackwardFilterAlgorithmEx = (delegate* unmanaged<nint, nint, nint, nint, nint, nint, nint, nint, int, int*, CudnnConvBwdAlgoPerf*, nint, nuint, int>)Export(library, "cudnnFindConvolutionBackwardFilterAlgorithmEx");
        GetConvolutionBackwardFilterWorkspaceSize = (delegate* unmanaged<nint, nint, nint, nint, nint, CudnnConvBwdFilterAlgo, nuint*, int>)Export(library, "cudnnGetConvolutionBackwardFilterWorkspaceSize");
        ConvolutionBackwardFilter = (delegate* unmanaged<nint, void*, nint, nint, nint, nint, nint, CudnnConvBwdFilterAlgo, nint, nuint, void*, nint, nint, int>)Export(library, "cudnnConvolutionBackwardFilter");
        CreateActivationDescriptor = (delegate* unmanaged<nint*, int>)Export(library, "cudnnCreateActivationDescriptor");
        DestroyActivationDescriptor = (delegate* unmanaged<nint, int>)Export(library, "cudnnDestroyActivationDescriptor");
        SetActivationDescriptor = (delegate* unmanaged<nint, CudnnActivationMode, int, double, int>)Export(library, "cudnnSetActivationDescriptor");
        ActivationForward = (delegate* unmanaged<nint, nint, void*, nint, nint, void*, nint, nint, int>)Export(library, "cudnnActivationForward");
        AddTensor = (delegate* unmanaged<nint, void*, nint, nint, void*, nint, nint, int>)Export(library, "cudnnAddTensor");
    }

    private static nint Export(nint library, string name) =>
        NativeLibrary.TryGetExport(library, name, out nint p) ? p
            : throw new CudaException($"cuDNN: the loaded library has no entry point {name} (cuDNN 9 is required)");

    /// <summary>Throws a <see cref="CudaException"/> naming the status, cuDNN's last error message and the call unless status is CUDNN_STATUS_SUCCESS.</summary>
    public void Check(int status, [CallerArgumentExpression(nameof(status))] string call = "")
    {
        if (status != 0) Fail(status, call);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Fail(int status, string call)
    {
        string name = Marshal.PtrToStringUTF8((nint)GetErrorString(status)) ?? $"status {status}";
        const int Max = 1024;
        byte* buffer = stackalloc byte[Max];
        buffer[0] = 0;
        GetLastErrorString(buffer, Max);
        string message = Marshal.PtrToStringUTF8((nint)buffer) ?? "";
        throw new CudaException("cudnn", status, name, message.Length > 0 ? message : "(cuDNN gave no further message)", call);
    }
}
