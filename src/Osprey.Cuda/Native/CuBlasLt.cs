using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Osprey.Cuda.Native;

// cuBLASLt (libcublasLt.so.12/13) through unmanaged function pointers resolved once per process.
// Values below are cublasLt.h / cublas_api.h / library_types.h of CUDA 12-13; they have been stable
// since CUDA 11. Only what CudaBackend.MatMul needs is bound.

internal enum CudaDataType
{
    R32F = 0,
    R16F = 2,
    R16BF = 14,
}

internal enum CublasComputeType
{
    Compute32F = 68,
    Compute32FFastTf32 = 77,
}

internal enum CublasOperation
{
    N = 0,
    T = 1,
}

internal enum CublasLtMatmulDescAttribute
{
    ComputeType = 0,
    ScaleType = 1,
    PointerMode = 2,
    TransA = 3,
    TransB = 4,
    Epilogue = 7,
    BiasPointer = 8,
    BiasBatchStride = 10,
}

internal enum CublasLtLayoutAttribute
{
    Type = 0,
    Order = 1,
    Rows = 2,
    Cols = 3,
    Ld = 4,
    BatchCount = 5,
    StridedBatchOffset = 6,
}

internal enum CublasLtPreferenceAttribute
{
    SearchMode = 0,
    MaxWorkspaceBytes = 1,
    MinAlignmentABytes = 5,
    MinAlignmentBBytes = 6,
    MinAlignmentCBytes = 7,
    MinAlignmentDBytes = 8,
}

/// <summary>cublasLtEpilogue_t. GELU here is cuBLASLt's tanh approximation, not torch's exact erf GELU.</summary>
internal enum CublasLtEpilogue : uint
{
    Default = 1,
    Relu = 2,
    Bias = 4,
    ReluBias = 6,
    Gelu = 32,
    GeluBias = 36,
}

/// <summary>cublasLtMatmulAlgo_t: 64 opaque bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct CublasLtMatmulAlgo
{
    public fixed ulong Data[8];
}

/// <summary>cublasLtMatmulHeuristicResult_t (96 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct CublasLtHeuristicResult
{
    public CublasLtMatmulAlgo Algo;
    public nuint WorkspaceSize;
    public int State;
    public float WavesCount;
    public fixed int Reserved[4];
}

/// <summary>The cuBLASLt entry points, loaded from one library handle.</summary>
internal sealed unsafe class CuBlasLt
{
    public readonly delegate* unmanaged<nint*, int> Create;
    public readonly delegate* unmanaged<nint, int> Destroy;
    public readonly delegate* unmanaged<int, byte*> GetStatusName;
    public readonly delegate* unmanaged<int, byte*> GetStatusString;
    public readonly delegate* unmanaged<nuint> GetVersion;
    public readonly delegate* unmanaged<nint*, CublasComputeType, CudaDataType, int> MatmulDescCreate;
    public readonly delegate* unmanaged<nint, int> MatmulDescDestroy;
    public readonly delegate* unmanaged<nint, CublasLtMatmulDescAttribute, void*, nuint, int> MatmulDescSetAttribute;
    public readonly delegate* unmanaged<nint*, CudaDataType, ulong, ulong, long, int> MatrixLayoutCreate;
    public readonly delegate* unmanaged<nint, int> MatrixLayoutDestroy;
    public readonly delegate* unmanaged<nint, CublasLtLayoutAttribute, void*, nuint, int> MatrixLayoutSetAttribute;
    public readonly delegate* unmanaged<nint*, int> MatmulPreferenceCreate;
    public readonly delegate* unmanaged<nint, int> MatmulPreferenceDestroy;
    public readonly delegate* unmanaged<nint, CublasLtPreferenceAttribute, void*, nuint, int> MatmulPreferenceSetAttribute;
    public readonly delegate* unmanaged<nint, nint, nint, nint, nint, nint, nint, int, CublasLtHeuristicResult*, int*, int> MatmulAlgoGetHeuristic;
    public readonly delegate* unmanaged<nint, nint, void*, nint, nint, nint, nint, void*, nint, nint, nint, nint, CublasLtMatmulAlgo*, nint, nuint, nint, int> Matmul;

    public CuBlasLt(nint library)
    {
        Create = (delegate* unmanaged<nint*, int>)Export(library, "cublasLtCreate");
        Destroy = (delegate* unmanaged<nint, int>)Export(library, "cublasLtDestroy");
        GetStatusName = (delegate* unmanaged<int, byte*>)Export(library, "cublasLtGetStatusName");
        GetStatusString = (delegate* unmanaged<int, byte*>)Export(library, "cublasLtGetStatusString");
        GetVersion = (delegate* unmanaged<nuint>)Export(library, "cublasLtGetVersion");
        MatmulDescCreate = (delegate* unmanaged<nint*, CublasComputeType, CudaDataType, int>)Export(library, "cublasLtMatmulDescCreate");
        MatmulDescDestroy = (delegate* unmanaged<nint, int>)Export(library, "cublasLtMatmulDescDestroy");
        MatmulDescSetAttribute = (delegate* unmanaged<nint, CublasLtMatmulDescAttribute, void*, nuint, int>)Export(library, "cublasLtMatmulDescSetAttribute");
        MatrixLayoutCreate = (delegate* unmanaged<nint*, CudaDataType, ulong, ulong, long, int>)Export(library, "cublasLtMatrixLayoutCreate");
        MatrixLayoutDestroy = (delegate* unmanaged<nint, int>)Export(library, "cublasLtMatrixLayoutDestroy");
        MatrixLayoutSetAttribute = (delegate* unmanaged<nint, CublasLtLayoutAttribute, void*, nuint, int>)Export(library, "cublasLtMatrixLayoutSetAttribute");
        MatmulPreferenceCreate = (delegate* unmanaged<nint*, int>)Export(library, "cublasLtMatmulPreferenceCreate");
        MatmulPreferenceDestroy = (delegate* unmanaged<nint, int>)Export(library, "cublasLtMatmulPreferenceDestroy");
        MatmulPreferenceSetAttribute = (delegate* unmanaged<nint, CublasLtPreferenceAttribute, void*, nuint, int>)Export(library, "cublasLtMatmulPreferenceSetAttribute");
        MatmulAlgoGetHeuristic = (delegate* unmanaged<nint, nint, nint, nint, nint, nint, nint, int, CublasLtHeuristicResult*, int*, int>)Export(library, "cublasLtMatmulAlgoGetHeuristic");
        Matmul = (delegate* unmanaged<nint, nint, void*, nint, nint, nint, nint, void*, nint, nint, nint, nint, CublasLtMatmulAlgo*, nint, nuint, nint, int>)Export(library, "cublasLtMatmul");
    }

    private static nint Export(nint library, string name) =>
        NativeLibrary.TryGetExport(library, name, out nint p) ? p
            : throw new CudaException($"cuBLASLt: the loaded library has no entry point {name} (cuBLASLt 11.4 or newer is required)");

    /// <summary>Throws a <see cref="CudaException"/> naming the status, its message and the call unless status is CUBLAS_STATUS_SUCCESS.</summary>
    public void Check(int status, [CallerArgumentExpression(nameof(status))] string call = "")
    {
        if (status != 0) Fail(status, call);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Fail(int status, string call)
    {
        string name = Marshal.PtrToStringUTF8((nint)GetStatusName(status)) ?? $"status {status}";
        string message = Marshal.PtrToStringUTF8((nint)GetStatusString(status)) ?? "";
        throw new CudaException("cublasLt", status, name, message, call);
    }

    /// <summary>Sets a descriptor attribute from a blittable value.</summary>
    public void SetDesc<T>(nint desc, CublasLtMatmulDescAttribute attribute, T value, [CallerArgumentExpression(nameof(attribute))] string what = "") where T : unmanaged =>
        Check(MatmulDescSetAttribute(desc, attribute, &value, (nuint)sizeof(T)), $"cublasLtMatmulDescSetAttribute({what})");

    public void SetLayout<T>(nint layout, CublasLtLayoutAttribute attribute, T value, [CallerArgumentExpression(nameof(attribute))] string what = "") where T : unmanaged =>
        Check(MatrixLayoutSetAttribute(layout, attribute, &value, (nuint)sizeof(T)), $"cublasLtMatrixLayoutSetAttribute({what})");

    public void SetPreference<T>(nint pref, CublasLtPreferenceAttribute attribute, T value, [CallerArgumentExpression(nameof(attribute))] string what = "") where T : unmanaged =>
        Check(MatmulPreferenceSetAttribute(pref, attribute, &value, (nuint)sizeof(T)), $"cublasLtMatmulPreferenceSetAttribute({what})");
}
