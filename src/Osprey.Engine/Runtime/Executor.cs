using Osprey.Core.Backends;
using Osprey.Core.Tensors;
using Osprey.Engine.Graph;

namespace Osprey.Engine.Runtime;

/// <summary>
/// Runs a graph on any backend. Setup makes two allocations: the weights (every constant at an aligned offset of
/// one storage, uploaded once) and the arena sized by the <see cref="MemoryPlan"/>; every value becomes a tensor
/// view of one of them and every node a prepared <see cref="Step"/>. <see cref="Run()"/> then only calls kernels:
/// it allocates no device memory. Inputs are written into <see cref="Input"/>, results read from <see cref="Output"/>;
/// outputs are overwritten by the next run.
/// </summary>
public sealed class Executor : IDisposable
{
    private readonly IBackend _backend;
    private readonly Tensor _arena;
    private readonly EngineWeights _weights;
    private readonly bool _ownsWeights;
    private readonly Dictionary<Value, Tensor> _tensors = [];
    private readonly Step[] _steps;
    private readonly Node[] _stepNodes;
    private readonly ComputeGraph _graph;
    private bool _disposed;

    /// <param name="backend">Must be the registered backend of its device (tensors are created through the registry).</param>
    /// <param name="weights">Weights shared with other executors of the same graph (an execution context each); null uploads this executor's own.</param>
    public Executor(ComputeGraph graph, IBackend backend, MemoryPlan? plan = null, EngineWeights? weights = null)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(backend);
        if (weights is not null && (weights.Graph != graph || weights.Backend != backend))
            throw new ArgumentException("executor: shared weights belong to another graph or backend", nameof(weights));
        _graph = graph;
        _backend = backend;
        Plan = plan ?? MemoryPlanner.Plan(graph);
        long align = Plan.Alignment;
        _ownsWeights = weights is null;
        _weights = weights ?? new EngineWeights(graph, backend, align);
        try
        {
            _arena = Block(backend, Plan.ArenaBytes, align);
            foreach (var c in graph.Constants) _tensors[c] = _weights[c].Share();
            foreach (var b in Plan.Buffers) _tensors[b.Value] = View(_arena.Storage, b.Value, b.Offset);
            var steps = new List<Step>(graph.Nodes.Count);
            var stepNodes = new List<Node>(graph.Nodes.Count);
            foreach (var n in graph.Nodes)
            {
                if (n.Kind == OpKind.View)
                {
                    var buf = _tensors[n.Inputs[0]];
                    var a = n.AttrsAs<ViewAttrs>();
                    _tensors[n.Output] = Tensor.AsStrided(buf.Storage, n.Output.Shape, a.Strides, buf.Offset + a.Offset, n.Output.DType);
                    continue;
                }
                steps.Add(Step.Create(n, v => _tensors[v])!);
                stepNodes.Add(n);
            }
            _steps = [.. steps];
            _stepNodes = [.. stepNodes];
            WorkspaceBytes = Tuning.ConvAlgorithms.Pin(this);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public MemoryPlan Plan { get; }

    /// <summary>The largest workspace a step's stored algorithm needs, reserved at setup (0 when the graph stores none).</summary>
    public long WorkspaceBytes { get; }

    /// <summary>The node each step runs (views have no step), in order: for per-node profiling.</summary>
    public IReadOnlyList<Node> StepNodes => _stepNodes;

    /// <summary>Runs one step alone (queued like <see cref="Run()"/>; for per-node profiling).</summary>
    public void RunStep(int index)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _steps[index].Run(_backend);
    }

    internal Step StepAt(int index) => _steps[index];

    public IBackend Backend => _backend;

    public EngineWeights Weights => _weights;

    internal static Tensor View(Storage s, Value v, long byteOffset)
    {
        int size = v.DType.SizeOf();
        if (byteOffset % size != 0) throw new GraphException($"value {v} placed at byte {byteOffset}, not a multiple of {size}");
        return Tensor.AsStrided(s, v.Shape, Value.DenseStrides(v.Shape, v.Format), byteOffset / size, v.DType);
    }

    public Tensor Input(string name) => _tensors[Find(_graph.Inputs, name, "input")];

    public Tensor Output(string name) => _tensors[Find(_graph.Outputs, name, "output")];

    private static Value Find(List<Value> list, string name, string what) =>
        list.FirstOrDefault(v => v.Name == name) ?? throw new GraphException($"engine has no {what} '{name}' (it has {string.Join(", ", list.Select(v => v.Name))})");

    /// <summary>Runs every step in order (queued on the backend; read outputs through downloads or Synchronize).</summary>
    public void Run()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        foreach (var s in _steps) s.Run(_backend);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_steps is not null) foreach (var s in _steps) s.Dispose();
        foreach (var t in _tensors.Values) t.Dispose();
        _tensors.Clear();
        if (_ownsWeights) _weights?.Dispose();
        _arena?.Dispose();
    }

    /// <summary>One allocation of a multiple of the alignment, as a byte tensor owning it (views add their own references).</summary>
    internal static Tensor Block(IBackend backend, long bytes, long align)
    {
        long rows = Math.Max(MemoryPlanner.Align(bytes, align) / align, 1);
        return Tensor.Empty(new Shape(checked((int)rows), (int)align), DType.UInt8, backend.Device);
    }
}
