using Osprey.Cuda.Native;
using Osprey.Cuda.Runtime;

namespace Osprey.Cuda.Memory;

/// <summary>
/// Page-locked host buffers that host/device copies go through, so that the DMA engine runs at full
/// speed and uploads return before the copy ends. Two buffers alternate: an upload copies a chunk into
/// one, queues the transfer and records an event; the buffer is reused only once its event has passed.
/// Downloads wait for the stream (they are a named synchronisation point).
/// </summary>
public sealed unsafe class PinnedStaging : IDisposable
{
    public const int ChunkBytes = 8 << 20;

    private readonly CudaContext _context;
    private readonly nint[] _buffers = new nint[2];
    private readonly CudaEvent[] _done = new CudaEvent[2];
    private readonly bool[] _pending = new bool[2];
    private readonly Lock _lock = new();
    private int _next;

    public PinnedStaging(CudaContext context)
    {
        _context = context;
        for (int i = 0; i < 2; i++)
        {
            CuDriver.Check(CuDriver.cuMemHostAlloc(out nint p, ChunkBytes, 0));
            _buffers[i] = p;
            _done[i] = new CudaEvent(timing: false);
        }
    }

    /// <summary>Queues host-to-device copies of <paramref name="source"/> to <paramref name="destination"/> on the stream.</summary>
    public void Upload(ReadOnlySpan<byte> source, ulong destination, CudaStream stream)
    {
        lock (_lock)
        {
            _context.MakeCurrent();
            for (int done = 0; done < source.Length;)
            {
                int n = Math.Min(ChunkBytes, source.Length - done);
                int b = _next;
                _next ^= 1;
                if (_pending[b]) _done[b].Synchronize();
                source.Slice(done, n).CopyTo(new Span<byte>((void*)_buffers[b], n));
                CuDriver.Check(CuDriver.cuMemcpyHtoDAsync(destination + (ulong)done, (void*)_buffers[b], (nuint)n, stream.Handle));
                _done[b].Record(stream);
                _pending[b] = true;
                done += n;
            }
        }
    }

    /// <summary>Copies device bytes to the host after the stream's queued work; returns when they are there.</summary>
    public void Download(ulong source, Span<byte> destination, CudaStream stream)
    {
        lock (_lock)
        {
            _context.MakeCurrent();
            for (int done = 0; done < destination.Length;)
            {
                int n = Math.Min(ChunkBytes, destination.Length - done);
                CuDriver.Check(CuDriver.cuMemcpyDtoHAsync((void*)_buffers[0], source + (ulong)done, (nuint)n, stream.Handle));
                stream.Synchronize();
                new ReadOnlySpan<byte>((void*)_buffers[0], n).CopyTo(destination.Slice(done, n));
                done += n;
            }
            _pending[0] = _pending[1] = false;
        }
    }

    public void Dispose()
    {
        for (int i = 0; i < 2; i++)
        {
            if (_pending[i]) _done[i].Synchronize();
            _done[i].Dispose();
            if (_buffers[i] != 0) CuDriver.cuMemFreeHost(_buffers[i]);
            _buffers[i] = 0;
        }
    }
}
