using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Osprey.Cuda.Native;

// cuDNN 9's backend ("graph") API: the API PyTorch's cudnn frontend uses, and the only one that reaches
// cuDNN's Hopper-specific convolution engines (the legacy cudnnConvolutionForward ran 3-20x slower on
// H100 for ResNet-50 shapes in fp16 NHWC; see docs/gpu-libs.md). Values are cudnn_graph.h's.

internal enum CudnnBackendDescriptorType
{
    Pointwise = 0,
    Convolution = 1,
    EngineConfig = 3,
    EngineHeuristics = 4,
    ExecutionPlan = 5,
    OperationConvolutionForward = 10,
    OperationPointwise = 13,
    OperationGraph = 15,
    VariantPack = 16,
    Tensor = 17,
}

internal enum CudnnBackendAttributeName
{
    PointwiseMode = 0,
    PointwiseMathPrec = 1,
    ConvolutionCompType = 100,
    ConvolutionConvMode = 101,
    ConvolutionDilations = 102,
    ConvolutionFilterStrides = 103,
    ConvolutionPostPaddings = 104,
    ConvolutionPrePaddings = 105,
    ConvolutionSpatialDims = 106,
    EngineHeurMode = 200,
    EngineHeurOperationGraph = 201,
    EngineHeurResults = 202,
    ExecutionPlanHandle = 400,
    ExecutionPlanEngineConfig = 401,
    ExecutionPlanWorkspaceSize = 402,
    ConvForwardAlpha = 700,
    ConvForwardBeta = 701,
    ConvForwardConvDesc = 702,
    ConvForwardW = 703,
    ConvForwardX = 704,
    ConvForwardY = 705,
    OperationPointwisePwDescriptor = 750,
    OperationPointwiseX = 751,
    OperationPointwiseB = 752,
    OperationPointwiseY = 753,
    OperationGraphHandle = 800,
    OperationGraphOps = 801,
    TensorByteAlignment = 900,
    TensorDataType = 901,
    TensorDimensions = 902,
    TensorStrides = 903,
    TensorUniqueId = 906,
    TensorIsVirtual = 907,
    VariantPackUniqueIds = 1000,
    VariantPackDataPointers = 1001,
    VariantPackWorkspace = 1003,
}

internal enum CudnnBackendAttributeType
{
    Handle = 0,
    DataType = 1,
    Boolean = 2,
    Int64 = 3,
    Float = 4,
    Double = 5,
    VoidPtr = 6,
    ConvolutionMode = 7,
    HeurMode = 8,
    PointwiseMode = 14,
    BackendDescriptor = 15,
}

internal enum CudnnPointwiseMode
{
    Add = 0,
    ReluForward = 100,
}

internal enum CudnnHeurMode
{
    Instant = 0,
    B = 1,
    Fallback = 2,
    A = 3,
}

/// <summary>The cuDNN backend-API entry points (same library handle as <see cref="CuDnn"/>).</summary>
internal sealed unsafe class CuDnnGraph
{
    private readonly CuDnn _dnn;
    public readonly delegate* unmanaged<CudnnBackendDescriptorType, nint*, int> CreateDescriptor;
    public readonly delegate* unmanaged<nint, int> DestroyDescriptor;
    public readonly delegate* unmanaged<nint, CudnnBackendAttributeName, CudnnBackendAttributeType, long, void*, int> SetAttribute;
    public readonly delegate* unmanaged<nint, CudnnBackendAttributeName, CudnnBackendAttributeType, long, long*, void*, int> GetAttribute;
    public readonly delegate* unmanaged<nint, int> Finalize;
    public readonly delegate* unmanaged<nint, nint, nint, int> Execute;

    public CuDnnGraph(CuDnn dnn, nint library)
    {
        _dnn = dnn;
        CreateDescriptor = (delegate* unmanaged<CudnnBackendDescriptorType, nint*, int>)Export(library, "cudnnBackendCreateDescriptor");
        DestroyDescriptor = (delegate* unmanaged<nint, int>)Export(library, "cudnnBackendDestroyDescriptor");
        SetAttribute = (delegate* unmanaged<nint, CudnnBackendAttributeName, CudnnBackendAttributeType, long, void*, int>)Export(library, "cudnnBackendSetAttribute");
        GetAttribute = (delegate* unmanaged<nint, CudnnBackendAttributeName, CudnnBackendAttributeType, long, long*, void*, int>)Export(library, "cudnnBackendGetAttribute");
        Finalize = (delegate* unmanaged<nint, int>)Export(library, "cudnnBackendFinalize");
        Execute = (delegate* unmanaged<nint, nint, nint, int>)Export(library, "cudnnBackendExecute");
    }

    private static nint Export(nint library, string name) =>
        NativeLibrary.TryGetExport(library, name, out nint p) ? p
            : throw new CudaException($"cuDNN: the loaded library has no entry point {name} (cuDNN 9 is required)");

    public void Check(int status, [CallerArgumentExpression(nameof(status))] string call = "") => _dnn.Check(status, call);

    public nint Create(CudnnBackendDescriptorType type)
    {
        nint d;
        Check(CreateDescriptor(type, &d), $"cudnnBackendCreateDescriptor({type})");
        return d;
    }

    public void Set<T>(nint desc, CudnnBackendAttributeName name, CudnnBackendAttributeType type, T value) where T : unmanaged =>
        Check(SetAttribute(desc, name, type, 1, &value), $"cudnnBackendSetAttribute({name})");

    public void Set<T>(nint desc, CudnnBackendAttributeName name, CudnnBackendAttributeType type, ReadOnlySpan<T> values) where T : unmanaged
    {
        fixed (T* p = values) Check(SetAttribute(desc, name, type, values.Length, p), $"cudnnBackendSetAttribute({name})");
    }

    public void Done(nint desc, string what) => Check(Finalize(desc), $"cudnnBackendFinalize({what})");
}
