using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Osprey.Core.Tensors;
using Osprey.Cuda.Native;

namespace Osprey.Cuda.Nccl;

// NCCL 2 (libnccl.so.2) through unmanaged function pointers resolved once per process from the library that
// LibraryResolver finds (the NVIDIA wheels' site-packages/nvidia/nccl/lib, the system folders, ...). Values are nccl.h's
// of NCCL 2.10 and later (bfloat16 and ncclAvg appeared in 2.10); the ABI has been stable since 2.0.

/// <summary>ncclDataType_t.</summary>
public enum NcclDataType
{
    Int8 = 0,
    Uint8 = 1,
    Int32 = 2,
    Uint32 = 3,
    Int64 = 4,
    Uint64 = 5,
    Float16 = 6,
    Float32 = 7,
    Float64 = 8,
    BFloat16 = 9,
}

/// <summary>ncclRedOp_t (the built-in reductions).</summary>
public enum NcclReduceOp
{
    Sum = 0,
    Prod = 1,
    Max = 2,
    Min = 3,
    Avg = 4,
}

/// <summary>ncclUniqueId: 128 opaque bytes that rank 0 creates and every rank passes to ncclCommInitRank.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct NcclUniqueId
{
    public const int Size = 128;
    private fixed byte _bytes[Size];

    /// <summary>The id's bytes (to send to the other ranks).</summary>
    public readonly byte[] ToBytes()
    {
        var b = new byte[Size];
        fixed (byte* p = _bytes) new ReadOnlySpan<byte>(p, Size).CopyTo(b);
        return b;
    }

    /// <summary>An id received from rank 0; exactly <see cref="Size"/> bytes.</summary>
    public static NcclUniqueId FromBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Size) throw new ArgumentException($"ncclUniqueId: {bytes.Length} bytes, expected {Size}", nameof(bytes));
        var id = default(NcclUniqueId);
        bytes.CopyTo(new Span<byte>(id._bytes, Size));
        return id;
    }
}

/// <summary>The NCCL entry points Osprey uses. Every status is checked by <see cref="Check"/>, which throws a
/// <see cref="CudaException"/> with NCCL's description (and the communicator's last error text when there is one).</summary>
public sealed unsafe class NcclApi
{
    private static readonly Lazy<NcclApi> s_api = new(() => new NcclApi(NativeLibraries.Load(NativeLibraries.Nccl)));

    internal readonly delegate* unmanaged<int*, int> GetVersion;
    internal readonly delegate* unmanaged<NcclUniqueId*, int> GetUniqueId;
    internal readonly delegate* unmanaged<nint*, int, NcclUniqueId, int, int> CommInitRank;
    internal readonly delegate* unmanaged<nint*, int, int*, int> CommInitAll;
    internal readonly delegate* unmanaged<nint, int> CommDestroy;
    internal readonly delegate* unmanaged<nint, int> CommAbort;
    internal readonly delegate* unmanaged<nint, int*, int> CommGetAsyncError;
    internal readonly delegate* unmanaged<nint, int*, int> CommCount;
    internal readonly delegate* unmanaged<nint, int*, int> CommCuDevice;
    internal readonly delegate* unmanaged<nint, int*, int> CommUserRank;
    internal readonly delegate* unmanaged<int, byte*> GetErrorString;
    internal readonly delegate* unmanaged<nint, byte*> GetLastError;
    internal readonly delegate* unmanaged<void*, void*, nuint, NcclDataType, NcclReduceOp, nint, nint, int> AllReduce;
    internal readonly delegate* unmanaged<void*, void*, nuint, NcclDataType, int, nint, nint, int> Broadcast;
    internal readonly delegate* unmanaged<int> GroupStart;
    internal readonly delegate* unmanaged<int> GroupEnd;

    private NcclApi(nint library)
    {
        GetVersion = (delegate* unmanaged<int*, int>)Export(library, "ncclGetVersion");
        GetUniqueId = (delegate* unmanaged<NcclUniqueId*, int>)Export(library, "ncclGetUniqueId");
        CommInitRank = (delegate* unmanaged<nint*, int, NcclUniqueId, int, int>)Export(library, "ncclCommInitRank");
        CommInitAll = (delegate* unmanaged<nint*, int, int*, int>)Export(library, "ncclCommInitAll");
        CommDestroy = (delegate* unmanaged<nint, int>)Export(library, "ncclCommDestroy");
        CommAbort = (delegate* unmanaged<nint, int>)Export(library, "ncclCommAbort");
        CommGetAsyncError = (delegate* unmanaged<nint, int*, int>)Export(library, "ncclCommGetAsyncError");
        CommCount = (delegate* unmanaged<nint, int*, int>)Export(library, "ncclCommCount");
        CommCuDevice = (delegate* unmanaged<nint, int*, int>)Export(library, "ncclCommCuDevice");
        CommUserRank = (delegate* unmanaged<nint, int*, int>)Export(library, "ncclCommUserRank");
        GetErrorString = (delegate* unmanaged<int, byte*>)Export(library, "ncclGetErrorString");
        // ncclGetLastError exists from NCCL 2.13; older libraries only give the status's generic text
        GetLastError = NativeLibrary.TryGetExport(library, "ncclGetLastError", out nint last) ? (delegate* unmanaged<nint, byte*>)last : null;
        AllReduce = (delegate* unmanaged<void*, void*, nuint, NcclDataType, NcclReduceOp, nint, nint, int>)Export(library, "ncclAllReduce");
        Broadcast = (delegate* unmanaged<void*, void*, nuint, NcclDataType, int, nint, nint, int>)Export(library, "ncclBroadcast");
        GroupStart = (delegate* unmanaged<int>)Export(library, "ncclGroupStart");
        GroupEnd = (delegate* unmanaged<int>)Export(library, "ncclGroupEnd");
        int v;
        Check(GetVersion(&v));
        Version = v;
        if (v < 21000)
            throw new CudaException($"nccl: version {VersionText} is too old: Osprey needs NCCL 2.10 or newer (bfloat16 all-reduce)");
    }

    /// <summary>The process's NCCL (loaded on first use; throws <see cref="CudaLibraryNotFoundException"/> listing every path
    /// tried when libnccl.so.2 is missing).</summary>
    public static NcclApi Instance => s_api.Value;

    /// <summary>NCCL_VERSION_CODE: major * 10000 + minor * 100 + patch (2.9 and later).</summary>
    public int Version { get; }

    public string VersionText => $"{Version / 10000}.{Version / 100 % 100}.{Version % 100}";

    private static nint Export(nint library, string name) =>
        NativeLibrary.TryGetExport(library, name, out nint p) ? p
            : throw new CudaException($"nccl: the loaded library has no entry point {name} (NCCL 2.10 or newer is required)");

    /// <summary>A fresh unique id (rank 0 creates it and sends it to the others).</summary>
    public NcclUniqueId NewUniqueId()
    {
        NcclUniqueId id;
        Check(GetUniqueId(&id));
        return id;
    }

    /// <summary>Throws a <see cref="CudaException"/> naming the status, NCCL's text for it and the call, unless it is ncclSuccess.</summary>
    public void Check(int status, nint comm = 0, [CallerArgumentExpression(nameof(status))] string call = "")
    {
        if (status != 0) Fail(status, comm, call);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Fail(int status, nint comm, string call)
    {
        string text = Marshal.PtrToStringUTF8((nint)GetErrorString(status)) ?? "";
        string? detail = comm != 0 && GetLastError != null ? Marshal.PtrToStringUTF8((nint)GetLastError(comm)) : null;
        if (!string.IsNullOrEmpty(detail)) text += $" ({detail})";
        throw new CudaException("nccl", status, StatusName(status), text, call);
    }

    /// <summary>ncclResult_t's symbolic names.</summary>
    public static string StatusName(int status) => status switch
    {
        0 => "ncclSuccess",
        1 => "ncclUnhandledCudaError",
        2 => "ncclSystemError",
        3 => "ncclInternalError",
        4 => "ncclInvalidArgument",
        5 => "ncclInvalidUsage",
        6 => "ncclRemoteError",
        7 => "ncclInProgress",
        _ => $"ncclResult {status}",
    };

    /// <summary>The NCCL element type of a tensor dtype; throws for dtypes NCCL cannot reduce (bool).</summary>
    public static NcclDataType DataType(DType dtype) => dtype switch
    {
        DType.Float32 => NcclDataType.Float32,
        DType.Float16 => NcclDataType.Float16,
        DType.BFloat16 => NcclDataType.BFloat16,
        DType.Int32 => NcclDataType.Int32,
        DType.Int64 => NcclDataType.Int64,
        DType.Int8 => NcclDataType.Int8,
        DType.UInt8 => NcclDataType.Uint8,
        _ => throw new ArgumentException($"nccl: no NCCL element type for {dtype.Name()}"),
    };

    /// <summary>ncclGroupStart ... ncclGroupEnd around <paramref name="body"/> (one thread driving several communicators).</summary>
    public void Group(Action body)
    {
        ArgumentNullException.ThrowIfNull(body);
        Check(GroupStart());
        Exception? failure = null;
        try { body(); }
        catch (Exception e) { failure = e; }
        int end = GroupEnd();
        if (failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        Check(end, call: "ncclGroupEnd()");
    }
}
