using Osprey.Core;
using Osprey.Core.Backends;
using Osprey.Core.Tensors;
using Osprey.Cuda.Memory;
using Osprey.Cuda.Native;
using Osprey.Cuda.Runtime;

namespace Osprey.Cuda;

/// <summary>
/// The CUDA backend of one device: a retained primary context, a non-blocking default stream that work is
/// queued on (or the calling thread's own stream, see <see cref="CreateStream"/> and <see cref="Use"/>), a caching
/// stream-ordered allocator, pinned staging buffers for host copies and the NVRTC kernel cache. Kernels live in the partial files beside this one (one per op family) and in
/// Kernels/*.cu. Work is asynchronous; <see cref="Synchronize"/> and <see cref="Download"/> are the only
/// places the host waits. Obtain one with <c>BackendRegistry.Get(Device.Cuda(i))</c> after <see cref="Register"/>.
/// </summary>
public sealed partial class CudaBackend : IBackend
{
    private readonly CudaContext _context;
    private readonly PinnedStaging _staging;
    private readonly bool _poison;
    private bool _disposed;

    public CudaBackend(int index)
    {
        _context = new CudaContext(index);
        Info = CudaDriver.Describe(index);
        Device = Device.Cuda(index);
        DefaultStream = new CudaStream();
        Allocator = new CachingAllocator(_context, Memory);
        _staging = new PinnedStaging(_context);
        Kernels = new KernelCache(_context, Info.Architecture);
        _poison = OspreyEnvironment.PoisonDeviceMemory;
    }

    /// <summary>Registers the CUDA provider with <see cref="BackendRegistry"/> (devices open lazily, on first use).</summary>
    public static void Register() => BackendRegistry.RegisterProvider(DeviceType.Cuda, i => new CudaBackend(i));

    /// <summary>True when a CUDA device can be opened; otherwise the reason (no driver, no device, ...).</summary>
    public static bool IsAvailable(out string reason)
    {
        int n = CudaDriver.DeviceCount(out string? why);
        reason = why ?? $"{n} CUDA device(s)";
        return n > 0;
    }

    public Device Device { get; }
    public string Name => $"{Info.Name} ({Info.Architecture}, {Info.TotalMemory / (1024.0 * 1024 * 1024):F1} GiB)";
    public MemoryStats Memory { get; } = new();
    public CudaDeviceInfo Info { get; }

    /// <summary>The stream of threads that use no stream of their own.</summary>
    public CudaStream DefaultStream { get; }

    /// <summary>The device allocator (also for library workspaces: see <see cref="AllocateWorkspace"/>).</summary>
    public CachingAllocator Allocator { get; }

    /// <summary>Compiled kernels of the embedded .cu sources.</summary>
    public KernelCache Kernels { get; }

    /// <summary>Makes this device's context current on the calling thread (cheap when it already is).</summary>
    public void MakeCurrent() => _context.MakeCurrent();

    /// <summary>A scratch buffer ordered on <see cref="Stream"/>; dispose it when the queued work that uses it has been queued.</summary>
    public DeviceBuffer AllocateWorkspace(long bytes)
    {
        _context.MakeCurrent();
        return new DeviceBuffer(Allocator, bytes, Stream.Handle);
    }

    /// <summary>Captures the work <paramref name="body"/> queues on this backend into a replayable CUDA graph.</summary>
    public CudaGraph CaptureGraph(Action body)
    {
        _context.MakeCurrent();
        return CudaGraph.Capture(Stream, Allocator, body);
    }

    public nint Alloc(long bytes)
    {
        _context.MakeCurrent();
        ulong p = Allocator.Allocate(bytes, Stream.Handle);
        if (_poison && bytes > 0) CuDriver.Check(CuDriver.cuMemsetD8Async(p, 0xFF, (nuint)bytes, Stream.Handle));
        return (nint)p;
    }

    public void Free(Storage storage)
    {
        ArgumentNullException.ThrowIfNull(storage);
        Allocator.Free((ulong)storage.Pointer, storage.Bytes, Stream.Handle);
    }

    public void Upload(ReadOnlySpan<byte> source, Storage destination, long byteOffset)
    {
        ArgumentNullException.ThrowIfNull(destination);
        CheckRange(destination, byteOffset, source.Length);
        if (source.Length == 0) return;
        (CurrentWorkStream?.Staging ?? _staging).Upload(source, (ulong)destination.Pointer + (ulong)byteOffset, Stream);
    }

    public void Download(Storage source, long byteOffset, Span<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(source);
        CheckRange(source, byteOffset, destination.Length);
        if (destination.Length == 0) { Synchronize(); return; }
        (CurrentWorkStream?.Staging ?? _staging).Download((ulong)source.Pointer + (ulong)byteOffset, destination, Stream);
    }

    private static void CheckRange(Storage s, long offset, long length)
    {
        if (offset < 0 || length < 0 || offset + length > s.Bytes)
            throw new ArgumentOutOfRangeException(nameof(offset), $"bytes [{offset}, {offset + length}) outside a storage of {s.Bytes} bytes");
    }

    /// <summary>Waits for the calling thread's stream (see <see cref="Stream"/>).</summary>
    public void Synchronize()
    {
        _context.MakeCurrent();
        Stream.Synchronize();
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _context.MakeCurrent();
        DefaultStream.Synchronize();
        DisposeLibraries();
        Kernels.Dispose();
        _staging.Dispose();
        Allocator.Dispose();
        DefaultStream.Dispose();
        _context.Dispose();
    }

    public override string ToString() => $"CudaBackend({Device}: {Name})";
}
