using Osprey.Cuda.Native;

namespace Osprey.Cuda.Runtime;

/// <summary>An owned, non-blocking CUDA stream. All GPU work is queued on explicit streams.</summary>
public sealed class CudaStream : IDisposable
{
    private nint _handle;

    public CudaStream()
    {
        CuDriver.Check(CuDriver.cuStreamCreate(out nint s, 1));
        _handle = s;
    }

    /// <summary>The CUstream, for library calls (cublasSetStream, cudnnSetStream, launches).</summary>
    public nint Handle => _handle;

    /// <summary>Blocks the host until the stream's queued work is done.</summary>
    public void Synchronize()
    {
        CudaCounters.CountSync();
        CuDriver.Check(CuDriver.cuStreamSynchronize(_handle));
    }

    /// <summary>Makes later work on this stream wait for an event recorded elsewhere (no host block).</summary>
    public void Wait(CudaEvent e)
    {
        ArgumentNullException.ThrowIfNull(e);
        CuDriver.Check(CuDriver.cuStreamWaitEvent(_handle, e.Handle, 0));
    }

    public void Dispose()
    {
        if (_handle == 0) return;
        CuDriver.cuStreamDestroy(_handle);
        _handle = 0;
    }
}

/// <summary>An owned CUDA event, for ordering between streams and for timing.</summary>
public sealed class CudaEvent : IDisposable
{
    private nint _handle;

    public CudaEvent(bool timing = true)
    {
        CuDriver.Check(CuDriver.cuEventCreate(out nint e, timing ? 0u : 2u));
        _handle = e;
    }

    public nint Handle => _handle;

    public void Record(CudaStream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        CuDriver.Check(CuDriver.cuEventRecord(_handle, stream.Handle));
    }

    /// <summary>Blocks the host until the event has happened.</summary>
    public void Synchronize()
    {
        CudaCounters.CountSync();
        CuDriver.Check(CuDriver.cuEventSynchronize(_handle));
    }

    /// <summary>Milliseconds between two recorded, completed events.</summary>
    public static float Elapsed(CudaEvent start, CudaEvent end)
    {
        ArgumentNullException.ThrowIfNull(start);
        ArgumentNullException.ThrowIfNull(end);
        CuDriver.Check(CuDriver.cuEventElapsedTime(out float ms, start._handle, end._handle));
        return ms;
    }

    public void Dispose()
    {
        if (_handle == 0) return;
        CuDriver.cuEventDestroy(_handle);
        _handle = 0;
    }
}
