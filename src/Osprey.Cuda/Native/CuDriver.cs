using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Osprey.Cuda.Native;

/// <summary>CUresult: the driver API's status codes (the ones Osprey tests for by value).</summary>
public enum CuResult
{
    Success = 0,
    InvalidValue = 1,
    OutOfMemory = 2,
    NotInitialized = 3,
    Deinitialized = 4,
    NoDevice = 100,
    InvalidDevice = 101,
    NotReady = 600,
}

/// <summary>CUdevice_attribute values Osprey reads.</summary>
public enum CuDeviceAttribute
{
    MaxThreadsPerBlock = 1,
    MaxSharedMemoryPerBlock = 8,
    WarpSize = 10,
    ClockRate = 13,
    MultiprocessorCount = 16,
    MemoryClockRate = 36,
    GlobalMemoryBusWidth = 37,
    L2CacheSize = 38,
    MaxThreadsPerMultiprocessor = 39,
    PciBusId = 33,
    ComputeCapabilityMajor = 75,
    ComputeCapabilityMinor = 76,
    MaxSharedMemoryPerBlockOptin = 97,
}

/// <summary>
/// CUDA driver API bindings (libcuda). Blittable signatures only: handles are nint, device pointers
/// ulong, sizes nuint. Entry points are the ABI-stable names exported by drivers for CUDA 12 and 13.
/// Every call's status goes through <see cref="Check"/>.
/// </summary>
public static unsafe partial class CuDriver
{
    private const string Lib = NativeLibraries.Cuda;

    // ---- errors ----
    [LibraryImport(Lib)] public static partial CuResult cuGetErrorName(CuResult error, out nint name);
    [LibraryImport(Lib)] public static partial CuResult cuGetErrorString(CuResult error, out nint text);

    // ---- init, versions, devices ----
    [LibraryImport(Lib)] public static partial CuResult cuInit(uint flags);
    [LibraryImport(Lib)] public static partial CuResult cuDriverGetVersion(out int version);
    [LibraryImport(Lib)] public static partial CuResult cuDeviceGetCount(out int count);
    [LibraryImport(Lib)] public static partial CuResult cuDeviceGet(out int device, int ordinal);
    [LibraryImport(Lib)] public static partial CuResult cuDeviceGetName(byte* name, int length, int device);
    [LibraryImport(Lib, EntryPoint = "cuDeviceTotalMem_v2")] public static partial CuResult cuDeviceTotalMem(out nuint bytes, int device);
    [LibraryImport(Lib)] public static partial CuResult cuDeviceGetAttribute(out int value, CuDeviceAttribute attribute, int device);

    // ---- primary context ----
    [LibraryImport(Lib)] public static partial CuResult cuDevicePrimaryCtxRetain(out nint context, int device);
    [LibraryImport(Lib, EntryPoint = "cuDevicePrimaryCtxRelease_v2")] public static partial CuResult cuDevicePrimaryCtxRelease(int device);
    [LibraryImport(Lib)] public static partial CuResult cuCtxSetCurrent(nint context);
    [LibraryImport(Lib)] public static partial CuResult cuCtxGetCurrent(out nint context);
    [LibraryImport(Lib)] public static partial CuResult cuCtxSynchronize();

    // ---- streams and events ----
    /// <summary>flags: 0 default, 1 non-blocking (does not synchronise with the legacy default stream).</summary>
    [LibraryImport(Lib)] public static partial CuResult cuStreamCreate(out nint stream, uint flags);
    [LibraryImport(Lib, EntryPoint = "cuStreamDestroy_v2")] public static partial CuResult cuStreamDestroy(nint stream);
    [LibraryImport(Lib)] public static partial CuResult cuStreamSynchronize(nint stream);
    [LibraryImport(Lib)] public static partial CuResult cuStreamQuery(nint stream);
    [LibraryImport(Lib)] public static partial CuResult cuStreamWaitEvent(nint stream, nint ev, uint flags);
    /// <summary>flags: 0 default (timing), 2 disable timing.</summary>
    [LibraryImport(Lib)] public static partial CuResult cuEventCreate(out nint ev, uint flags);
    [LibraryImport(Lib, EntryPoint = "cuEventDestroy_v2")] public static partial CuResult cuEventDestroy(nint ev);
    [LibraryImport(Lib)] public static partial CuResult cuEventRecord(nint ev, nint stream);
    [LibraryImport(Lib)] public static partial CuResult cuEventSynchronize(nint ev);
    [LibraryImport(Lib)] public static partial CuResult cuEventQuery(nint ev);
    [LibraryImport(Lib)] public static partial CuResult cuEventElapsedTime(out float milliseconds, nint start, nint end);

    // ---- memory ----
    [LibraryImport(Lib, EntryPoint = "cuMemGetInfo_v2")] public static partial CuResult cuMemGetInfo(out nuint free, out nuint total);
    [LibraryImport(Lib, EntryPoint = "cuMemAlloc_v2")] public static partial CuResult cuMemAlloc(out ulong pointer, nuint bytes);
    [LibraryImport(Lib, EntryPoint = "cuMemFree_v2")] public static partial CuResult cuMemFree(ulong pointer);
    /// <summary>Pinned (page-locked) host memory; flags 0 = portable off, no mapping.</summary>
    [LibraryImport(Lib)] public static partial CuResult cuMemHostAlloc(out nint pointer, nuint bytes, uint flags);
    [LibraryImport(Lib)] public static partial CuResult cuMemFreeHost(nint pointer);
    [LibraryImport(Lib, EntryPoint = "cuMemcpyHtoDAsync_v2")] public static partial CuResult cuMemcpyHtoDAsync(ulong dst, void* src, nuint bytes, nint stream);
    [LibraryImport(Lib, EntryPoint = "cuMemcpyDtoHAsync_v2")] public static partial CuResult cuMemcpyDtoHAsync(void* dst, ulong src, nuint bytes, nint stream);
    [LibraryImport(Lib, EntryPoint = "cuMemcpyDtoDAsync_v2")] public static partial CuResult cuMemcpyDtoDAsync(ulong dst, ulong src, nuint bytes, nint stream);
    [LibraryImport(Lib, EntryPoint = "cuMemsetD8Async")] public static partial CuResult cuMemsetD8Async(ulong dst, byte value, nuint count, nint stream);
    [LibraryImport(Lib, EntryPoint = "cuMemsetD16Async")] public static partial CuResult cuMemsetD16Async(ulong dst, ushort value, nuint count, nint stream);
    [LibraryImport(Lib, EntryPoint = "cuMemsetD32Async")] public static partial CuResult cuMemsetD32Async(ulong dst, uint value, nuint count, nint stream);

    // ---- modules and launches ----
    [LibraryImport(Lib)] public static partial CuResult cuModuleLoadData(out nint module, void* image);
    [LibraryImport(Lib)] public static partial CuResult cuModuleUnload(nint module);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] public static partial CuResult cuModuleGetFunction(out nint function, nint module, string name);
    /// <summary>attribute 8 = CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES.</summary>
    [LibraryImport(Lib)] public static partial CuResult cuFuncSetAttribute(nint function, int attribute, int value);
    [LibraryImport(Lib)]
    public static partial CuResult cuLaunchKernel(nint function, uint gridX, uint gridY, uint gridZ,
        uint blockX, uint blockY, uint blockZ, uint sharedBytes, nint stream, void** parameters, void** extra);

    // ---- CUDA graphs ----
    /// <summary>mode: 0 global, 1 thread-local, 2 relaxed.</summary>
    [LibraryImport(Lib, EntryPoint = "cuStreamBeginCapture_v2")] public static partial CuResult cuStreamBeginCapture(nint stream, int mode);
    [LibraryImport(Lib)] public static partial CuResult cuStreamEndCapture(nint stream, out nint graph);
    /// <summary>status: 0 none, 1 active, 2 invalidated.</summary>
    [LibraryImport(Lib)] public static partial CuResult cuStreamIsCapturing(nint stream, out int status);
    [LibraryImport(Lib)] public static partial CuResult cuGraphInstantiateWithFlags(out nint exec, nint graph, ulong flags);
    [LibraryImport(Lib)] public static partial CuResult cuGraphLaunch(nint exec, nint stream);
    [LibraryImport(Lib)] public static partial CuResult cuGraphExecDestroy(nint exec);
    [LibraryImport(Lib)] public static partial CuResult cuGraphDestroy(nint graph);

    /// <summary>Throws a <see cref="CudaException"/> naming the status, its description and the call unless it is success.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Check(CuResult result, [CallerArgumentExpression(nameof(result))] string call = "")
    {
        if (result != CuResult.Success) Throw(result, call);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Throw(CuResult result, string call) =>
        throw new CudaException("cuda", (int)result, ErrorName(result), ErrorText(result), call);

    public static string ErrorName(CuResult r) =>
        cuGetErrorName(r, out nint p) == CuResult.Success && p != 0 ? Marshal.PtrToStringUTF8(p) ?? "?" : $"CUDA_ERROR_{(int)r}";

    public static string ErrorText(CuResult r) =>
        cuGetErrorString(r, out nint p) == CuResult.Success && p != 0 ? Marshal.PtrToStringUTF8(p) ?? "?" : "unknown error";
}
