using Osprey.Cuda.Native;

namespace Osprey.Cuda.Runtime;

/// <summary>
/// A captured and instantiated CUDA graph: the kernels that some code queued on a stream, replayed with
/// one launch. Capture uses relaxed mode, so cached allocations may happen inside it; every tensor the
/// captured work reads or writes must stay alive (undisposed) for as long as the graph is replayed.
/// </summary>
public sealed class CudaGraph : IDisposable
{
    private nint _graph, _exec;
    private readonly CudaStream _stream;

    private CudaGraph(nint graph, nint exec, CudaStream stream)
    {
        _graph = graph;
        _exec = exec;
        _stream = stream;
    }

    /// <summary>Runs <paramref name="body"/> with <paramref name="stream"/> capturing, then instantiates the graph.</summary>
    public static CudaGraph Capture(CudaStream stream, Action body)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(body);
        CuDriver.Check(CuDriver.cuStreamBeginCapture(stream.Handle, 2));
        nint graph;
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
        var r = CuDriver.cuGraphInstantiateWithFlags(out nint exec, graph, 0);
        if (r != CuResult.Success) CuDriver.cuGraphDestroy(graph);
        CuDriver.Check(r, "cuGraphInstantiateWithFlags");
        return new CudaGraph(graph, exec, stream);
    }

    /// <summary>Queues one replay of the graph on the stream it was captured on.</summary>
    public void Launch()
    {
        ObjectDisposedException.ThrowIf(_exec == 0, this);
        CuDriver.Check(CuDriver.cuGraphLaunch(_exec, _stream.Handle));
    }

    public void Dispose()
    {
        if (_exec != 0) CuDriver.cuGraphExecDestroy(_exec);
        if (_graph != 0) CuDriver.cuGraphDestroy(_graph);
        _exec = _graph = 0;
    }
}
