using System.Threading;

namespace Osprey.Core.Backends;

/// <summary>
/// One allocation on one backend. Tensors (and views of them) share a storage through a reference
/// count; the memory goes back to the backend when the last reference is released, never by the GC.
/// </summary>
public sealed class Storage
{
    private int _refs = 1;

    internal Storage(IBackend backend, nint pointer, long bytes)
    {
        Backend = backend;
        Pointer = pointer;
        Bytes = bytes;
    }

    public IBackend Backend { get; }

    /// <summary>Host address (CPU) or device address (CUDA) of the first byte.</summary>
    public nint Pointer { get; }

    public long Bytes { get; }

    public bool IsReleased => Volatile.Read(ref _refs) <= 0;

    internal void AddRef()
    {
        if (Interlocked.Increment(ref _refs) <= 1)
            throw new ObjectDisposedException(nameof(Storage), "storage was already released");
    }

    internal void Release()
    {
        int left = Interlocked.Decrement(ref _refs);
        if (left == 0) Backend.Free(this);
        else if (left < 0) throw new ObjectDisposedException(nameof(Storage), "storage released twice");
    }

    /// <summary>Allocates through the backend and wraps the memory in a storage with one reference.</summary>
    public static Storage Allocate(IBackend backend, long bytes)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        return new Storage(backend, backend.Alloc(bytes), bytes);
    }
}

/// <summary>Live and peak memory of one backend, for leak tests and reports.</summary>
public sealed class MemoryStats
{
    private long _liveBytes, _peakBytes, _liveAllocations, _totalAllocations;

    public long LiveBytes => Interlocked.Read(ref _liveBytes);
    public long PeakBytes => Interlocked.Read(ref _peakBytes);
    public long LiveAllocations => Interlocked.Read(ref _liveAllocations);
    public long TotalAllocations => Interlocked.Read(ref _totalAllocations);

    public void OnAlloc(long bytes)
    {
        long live = Interlocked.Add(ref _liveBytes, bytes);
        Interlocked.Increment(ref _liveAllocations);
        Interlocked.Increment(ref _totalAllocations);
        long peak;
        while (live > (peak = Interlocked.Read(ref _peakBytes)))
            if (Interlocked.CompareExchange(ref _peakBytes, live, peak) == peak) break;
    }

    public void OnFree(long bytes)
    {
        Interlocked.Add(ref _liveBytes, -bytes);
        Interlocked.Decrement(ref _liveAllocations);
    }

    public void ResetPeak() => Interlocked.Exchange(ref _peakBytes, LiveBytes);

    public override string ToString() =>
        $"live {LiveBytes:N0} B in {LiveAllocations} allocations, peak {PeakBytes:N0} B";
}
