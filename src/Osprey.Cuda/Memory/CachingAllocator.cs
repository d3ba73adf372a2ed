using System.Globalization;
using Osprey.Core;
using Osprey.Core.Backends;
using Osprey.Cuda.Native;
using Osprey.Cuda.Runtime;

namespace Osprey.Cuda.Memory;

/// <summary>
/// A caching, stream-ordered device allocator. Sizes are rounded up to a bin (multiples of 512 B up to
/// 64 KiB, then quarter powers of two up to 64 MiB, then 2 MiB multiples); a freed block goes on the free
/// list of its (stream, bin) and is handed out again to work on the same stream, which the stream's order
/// makes safe without any synchronisation (a block returns to the list of the stream it was allocated for, whichever
/// stream frees it). A cache hit costs a dictionary lookup and no driver call, which keeps small ops cheap and lets
/// allocations happen during CUDA graph capture (relaxed mode); memory a graph uses stays the graph's (BeginCapture).
/// (cuMemAllocAsync pools were the alternative: stream-ordered too, but a driver call per allocation and
/// reserved memory the driver does not report per pool.)
/// On out-of-memory the cache is emptied and the allocation retried once before
/// <see cref="OutOfDeviceMemoryException"/> says what was asked, what is free and what to do.
/// <see cref="MemoryStats"/> counts live (requested) bytes; <see cref="ReservedBytes"/> includes the cache.
/// </summary>
public sealed class CachingAllocator : IDisposable
{
    private readonly CudaContext _context;
    private readonly MemoryStats _stats;
    private readonly Lock _lock = new();
    private readonly Dictionary<(nint Stream, long Bin), Stack<ulong>> _free = [];
    private long _reserved, _cached;
    // live block -> the stream it was allocated for: a freed block goes back to that stream's list whatever stream frees it
    private readonly Dictionary<ulong, nint> _streamOf = [];
    // streams being captured into a CUDA graph -> the pool of that graph
    private readonly Dictionary<nint, GraphPool> _capturing = [];
    // live blocks allocated during a capture whose graph still exists -> its pool (freed, they stay the graph's)
    private readonly Dictionary<ulong, GraphPool> _ownedBy = [];
    private bool _disposed;

    public CachingAllocator(CudaContext context, MemoryStats stats)
    {
        _context = context;
        _stats = stats;
    }

    /// <summary>Bytes obtained from the driver and not yet returned to it (live blocks + cache).</summary>
    public long ReservedBytes => Interlocked.Read(ref _reserved);

    /// <summary>Bytes held in free lists, ready for reuse.</summary>
    public long CachedBytes => Interlocked.Read(ref _cached);

    /// <summary>The block size a request is served from.</summary>
    public static long BinSize(long bytes)
    {
        if (bytes <= 0) return 0;
        if (bytes <= 64 << 10) return (bytes + 511) & ~511L;
        if (bytes > 64 << 20) return (bytes + (2 << 20) - 1) & ~((2L << 20) - 1);
        long p = 1L << (int)(63 - long.LeadingZeroCount(bytes - 1)); // largest power of two below bytes
        long quarter = p / 4;
        return (bytes + quarter - 1) / quarter * quarter;
    }

    /// <summary>A device pointer to at least <paramref name="bytes"/> bytes, usable by work on <paramref name="stream"/>.</summary>
    public ulong Allocate(long bytes, nint stream)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        ObjectDisposedException.ThrowIf(_disposed, this);
        long bin = BinSize(bytes);
        ulong ptr = 0;
        if (bin > 0)
        {
            lock (_lock)
            {
                if (_free.TryGetValue((stream, bin), out var list) && list.Count > 0)
                {
                    ptr = list.Pop();
                    _cached -= bin;
                }
            }
            if (ptr == 0) ptr = AllocateFromDriver(bytes, bin, stream);
            lock (_lock)
            {
                _streamOf[ptr] = stream;
                if (_capturing.Count > 0 && _capturing.TryGetValue(stream, out var pool))
                {
                    _ownedBy[ptr] = pool;
                    pool.Owned.Add(ptr);
                }
            }
        }
        _stats.OnAlloc(bytes);
        return ptr;
    }

    /// <summary>Returns a block to its stream's free list. The stream's later work may reuse it at once.</summary>
    public void Free(ulong pointer, long bytes, nint stream)
    {
        _stats.OnFree(bytes);
        long bin = BinSize(bytes);
        if (bin == 0 || pointer == 0) return;
        if (_disposed)
        {
            _context.MakeCurrent();
            CuDriver.cuMemFree(pointer);
            return;
        }
        lock (_lock)
        {
            if (_streamOf.Remove(pointer, out nint owner)) stream = owner;
            if (_ownedBy.Count > 0 && _ownedBy.Remove(pointer, out var graph))
            {
                // allocated during a capture: the graph keeps addressing it on every replay
                graph.Owned.Remove(pointer);
                graph.Held.Add((pointer, bin, stream));
                return;
            }
            if (_capturing.Count > 0 && _capturing.TryGetValue(stream, out var pool))
            {
                // freed while its stream is being captured: the captured work may read or write it on every replay
                pool.Held.Add((pointer, bin, stream));
                return;
            }
            Push(pointer, bin, stream);
        }
    }

    private void Push(ulong pointer, long bin, nint stream)
    {
        if (!_free.TryGetValue((stream, bin), out var list)) _free[(stream, bin)] = list = new Stack<ulong>();
        list.Push(pointer);
        _cached += bin;
    }

    /// <summary>
    /// From now until <see cref="EndCapture"/>, <paramref name="stream"/> is being captured into a CUDA graph, which keeps
    /// using the memory of the captured work on every replay. Like PyTorch's graph-private pools: blocks freed on that
    /// stream during the capture, and blocks allocated during it (freed later, while the graph lives), are the graph's and
    /// go back to the cache only when it is destroyed (<see cref="ReleaseGraph"/>). Other streams may capture at the same time.
    /// </summary>
    public void BeginCapture(nint stream)
    {
        lock (_lock)
        {
            if (_capturing.ContainsKey(stream)) throw new InvalidOperationException("a graph capture is already in progress on this stream");
            _capturing[stream] = new GraphPool();
        }
    }

    /// <summary>Ends the capture of <paramref name="stream"/>; the pool holds the graph's blocks until <see cref="ReleaseGraph"/>.</summary>
    public GraphPool EndCapture(nint stream)
    {
        lock (_lock)
        {
            if (!_capturing.Remove(stream, out var pool)) throw new InvalidOperationException("no graph capture in progress on this stream");
            return pool;
        }
    }

    /// <summary>A destroyed graph's blocks: the freed ones return to the cache; live ones become ordinary blocks.</summary>
    public void ReleaseGraph(GraphPool pool)
    {
        ArgumentNullException.ThrowIfNull(pool);
        lock (_lock)
        {
            foreach (var (p, bin, stream) in pool.Held) Push(p, bin, stream);
            pool.Held.Clear();
            foreach (ulong p in pool.Owned) _ownedBy.Remove(p);
            pool.Owned.Clear();
        }
    }

    private ulong AllocateFromDriver(long bytes, long bin, nint stream)
    {
        _context.MakeCurrent();
        var r = CuDriver.cuMemAlloc(out ulong ptr, (nuint)bin);
        if (r == CuResult.OutOfMemory)
        {
            EmptyCache(stream);
            r = CuDriver.cuMemAlloc(out ptr, (nuint)bin);
        }
        if (r == CuResult.OutOfMemory) ThrowOutOfMemory(bytes);
        CuDriver.Check(r, $"cuMemAlloc({bin} bytes)");
        Interlocked.Add(ref _reserved, bin);
        return ptr;
    }

    private void ThrowOutOfMemory(long bytes)
    {
        CuDriver.cuMemGetInfo(out nuint free, out nuint total);
        var inv = CultureInfo.InvariantCulture;
        string message = string.Create(inv, $"cuda:{_context.Index}: out of memory: requested {bytes:N0} bytes ({Mib(bytes)}), ") +
            string.Create(inv, $"{(long)free:N0} bytes free ({Mib((long)free)}) of {(long)total:N0} ({Mib((long)total)}); ") +
            string.Create(inv, $"{_stats.LiveBytes:N0} bytes held by live tensors, {CachedBytes:N0} cached. ") +
            "Try a smaller batch size (or smaller images), or free tensors you no longer need.";
        throw new OutOfDeviceMemoryException(message);
    }

    private static string Mib(long b) => string.Create(CultureInfo.InvariantCulture, $"{b / (1024.0 * 1024.0):F1} MiB");

    /// <summary>Waits for <paramref name="stream"/> and returns every cached block to the driver.</summary>
    public void EmptyCache(nint stream)
    {
        _context.MakeCurrent();
        if (stream != 0) { Runtime.CudaCounters.CountSync(); CuDriver.Check(CuDriver.cuStreamSynchronize(stream)); }
        lock (_lock)
        {
            foreach (var ((_, bin), list) in _free)
                while (list.Count > 0)
                {
                    CuDriver.Check(CuDriver.cuMemFree(list.Pop()));
                    _cached -= bin;
                    Interlocked.Add(ref _reserved, -bin);
                }
            _free.Clear();
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        EmptyCache(0);
        _disposed = true;
    }
}

/// <summary>The memory of one CUDA graph (see <see cref="CachingAllocator.BeginCapture"/>); opaque to callers.</summary>
public sealed class GraphPool
{
    internal readonly List<(ulong Pointer, long Bin, nint Stream)> Held = [];
    internal readonly HashSet<ulong> Owned = [];
}

/// <summary>A device allocation with one owner (e.g. a library's workspace); returns to the allocator on dispose.</summary>
public sealed class DeviceBuffer : IDisposable
{
    private readonly CachingAllocator _allocator;
    private readonly nint _stream;

    internal DeviceBuffer(CachingAllocator allocator, long bytes, nint stream)
    {
        _allocator = allocator;
        _stream = stream;
        Bytes = bytes;
        Pointer = allocator.Allocate(bytes, stream);
    }

    private bool _disposed;

    public ulong Pointer { get; }
    public long Bytes { get; }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _allocator.Free(Pointer, Bytes, _stream);
    }
}
