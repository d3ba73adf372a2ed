using Osprey.Core.Backends;
using Osprey.Core.Tensors;
using Osprey.Engine.Graph;

namespace Osprey.Engine.Runtime;

/// <summary>
/// A graph's constants uploaded once to a device: one allocation, every constant at an aligned offset. Several
/// <see cref="Executor"/>s (execution contexts, each with its own arena) share one instance; it must outlive them.
/// </summary>
public sealed class EngineWeights : IDisposable
{
    private readonly Tensor _block;
    private readonly Dictionary<Value, Tensor> _tensors = [];
    private bool _disposed;

    public EngineWeights(ComputeGraph graph, IBackend backend, long alignment = MemoryPlanner.DefaultAlignment)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(backend);
        Graph = graph;
        Backend = backend;
        long bytes = 0;
        foreach (var c in graph.Constants) bytes += MemoryPlanner.Align(c.Bytes, alignment);
        Bytes = bytes;
        _block = Executor.Block(backend, bytes, alignment);
        try
        {
            long w = 0;
            foreach (var c in graph.Constants)
            {
                backend.Upload(c.Data, _block.Storage, w);
                _tensors[c] = Executor.View(_block.Storage, c, w);
                w += MemoryPlanner.Align(c.Bytes, alignment);
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public ComputeGraph Graph { get; }

    public IBackend Backend { get; }

    /// <summary>Device bytes of the weights (aligned).</summary>
    public long Bytes { get; }

    /// <summary>The device tensor of a constant of <see cref="Graph"/>.</summary>
    public Tensor this[Value constant] => _tensors.TryGetValue(constant, out var t) ? t
        : throw new GraphException($"engine weights: {constant} is not a constant of this graph");

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var t in _tensors.Values) t.Dispose();
        _tensors.Clear();
        _block?.Dispose();
    }
}
