using Osprey.Cuda.Memory;
using Osprey.Cuda.Native;

namespace Osprey.Cuda.Runtime;

/// <summary>
/// A captured and instantiated CUDA graph: the kernels that some code queued on a stream, replayed with
/// one launch. Capture uses relaxed mode, so cached allocations may happen inside it. The graph owns the memory of
/// the captured work (a graph-private pool, as PyTorch's): blocks freed during the capture and blocks allocated during
/// it stay reserved for the graph until it is disposed, even when their tensors are disposed earlier. Tensors made
/// before the capture that the captured work reads or writes must stay alive for as long as the graph is replayed.
/// </summary>
public sealed class CudaGraph : IDisposable
{
    private nint _graph, _exec;
    private readonly CudaStream _stream;
    private readonly CachingAllocator _allocator;
    private readonly GraphPool _pool;

    private CudaGraph(nint graph, nint exec, CudaStream stream, CachingAllocator allocator, GraphPool pool)
    {
        _graph = graph;
        _exec = exec;
        _stream = stream;
        _allocator = allocator;
        _pool = pool;
    }

    /// <summary>
    /// Runs <paramref name="body"/> with <paramref name="stream"/> capturing, then instantiates the graph.
    /// Blocks freed during the capture (the graph's intermediates) stay reserved for the graph until it is disposed.
    /// </summary>
    public static CudaGraph Capture(CudaStream stream, CachingAllocator allocator, Action body)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(allocator);
        ArgumentNullException.ThrowIfNull(body);
        allocator.BeginCapture(stream.Handle);
        nint graph;
        try
        {
            CuDriver.Check(CuDriver.cuStreamBeginCapture(stream.Handle, 2));
            try
            {
                body();
            }
            catch
            {
                if (CuDriver.cuStreamEndCapture(stream.Handle, out graph) == CuResult.Success && graph != 0) CuDriver.cuGraphDestroy(graph);
                throw;
            }
            CuDriver.Check(CuDriver.cuStreamEndCapture(stream.Handle, out graph));
        }
        catch
        {
            allocator.ReleaseGraph(allocator.EndCapture(stream.Handle));
            throw;
        }
        var pool = allocator.EndCapture(stream.Handle);
        var r = CuDriver.cuGraphInstantiateWithFlags(out nint exec, graph, 0);
        if (r != CuResult.Success)
        {
            CuDriver.cuGraphDestroy(graph);
            allocator.ReleaseGraph(pool);
        }
        CuDriver.Check(r, "cuGraphInstantiateWithFlags");
        return new CudaGraph(graph, exec, stream, allocator, pool);
    }

    /// <summary>Queues one replay of the graph on the stream it was captured on.</summary>
    public void Launch()
    {
        ObjectDisposedException.ThrowIf(_exec == 0, this);
        CuDriver.Check(CuDriver.cuGraphLaunch(_exec, _stream.Handle));
    }

    public void Dispose()
    {
        if (_exec == 0) return;
        _stream.Synchronize(); // replays still queued use the held blocks
        CuDriver.cuGraphExecDestroy(_exec);
        CuDriver.cuGraphDestroy(_graph);
        _exec = _graph = 0;
        _allocator.ReleaseGraph(_pool);
    }
}
