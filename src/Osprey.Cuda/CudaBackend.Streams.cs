using Osprey.Cuda.Memory;
using Osprey.Cuda.Runtime;

namespace Osprey.Cuda;

// Streams per execution context: a thread that uses a CudaWorkStream (backend.Use(s)) queues all of this backend's
// work there (kernels, cuDNN, cuBLASLt, copies, allocations, graph capture); other threads stay on the default stream.
public sealed partial class CudaBackend
{
    [ThreadStatic] private static CudaWorkStream? t_stream;

    /// <summary>
    /// The stream this thread's work on this backend is queued on: the thread's <see cref="CudaWorkStream"/> when it
    /// uses one of this backend (<see cref="Use"/>), else <see cref="DefaultStream"/>.
    /// </summary>
    public CudaStream Stream => t_stream is { } w && w.Backend == this ? w.Stream : DefaultStream;

    private CudaWorkStream? CurrentWorkStream => t_stream is { } w && w.Backend == this ? w : null;

    /// <summary>A new stream of this device with its own pinned staging (one per execution context).</summary>
    public CudaWorkStream CreateStream()
    {
        MakeCurrent();
        return new CudaWorkStream(this, _context);
    }

    /// <summary>
    /// Until the scope is disposed, this thread queues this backend's work on <paramref name="stream"/>. Memory allocated
    /// there returns to that stream's cache when freed. Work of other streams that this work reads (uploaded weights)
    /// must be complete or ordered first (the default stream is synchronised when a work stream is created).
    /// </summary>
    public StreamScope Use(CudaWorkStream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (stream.Backend != this) throw new ArgumentException($"stream of {stream.Backend.Device} used on {Device}");
        var previous = t_stream;
        t_stream = stream;
        MakeCurrent();
        return new StreamScope(previous, true);
    }

    /// <summary>Restores the thread's previous stream (the default value restores nothing).</summary>
    public readonly struct StreamScope : IDisposable
    {
        private readonly CudaWorkStream? _previous;
        private readonly bool _active;

        internal StreamScope(CudaWorkStream? previous, bool active)
        {
            _previous = previous;
            _active = active;
        }

        public void Dispose()
        {
            if (_active) t_stream = _previous;
        }
    }
}

/// <summary>
/// A non-blocking stream of one device with its own pinned staging buffers, for one execution context (a thread);
/// see <see cref="CudaBackend.Use"/>. Dispose waits for its work.
/// </summary>
public sealed class CudaWorkStream : IDisposable
{
    private bool _disposed;

    internal CudaWorkStream(CudaBackend backend, CudaContext context)
    {
        Backend = backend;
        // work already queued on the default stream (weight uploads) comes before anything queued here
        backend.DefaultStream.Synchronize();
        Stream = new CudaStream();
        Staging = new PinnedStaging(context);
    }

    public CudaBackend Backend { get; }
    public CudaStream Stream { get; }
    internal PinnedStaging Staging { get; }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Backend.MakeCurrent();
        Stream.Synchronize();
        Staging.Dispose();
        Stream.Dispose();
    }
}
