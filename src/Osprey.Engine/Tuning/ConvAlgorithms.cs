using Osprey.Core.Backends;
using Osprey.Cuda;
using Osprey.Cuda.Native;
using Osprey.Engine.Graph;
using Osprey.Engine.Runtime;
using Osprey.Engine.Serialization;

namespace Osprey.Engine.Tuning;

/// <summary>What <see cref="ConvAlgorithms.Measure"/> recorded: convolutions tuned, distinct choices, largest workspace.</summary>
public sealed record TuningReport(int Convolutions, int Distinct, long MaxWorkspaceBytes);

/// <summary>
/// Convolution algorithms chosen by measurement at build time and stored in the graph (<see cref="Node.Algorithm"/>, engine
/// format v2). <see cref="Measure"/> runs the graph once on the target backend (the CUDA backend times the cuDNN candidates
/// on the real arena buffers) and records each convolution's choice; <see cref="Pin"/> (called by every
/// <see cref="Executor"/>) hands the stored choices back to the backend, so a loaded engine never measures, and reserves
/// the largest workspace up front. The CPU backend has no algorithm choice: its graphs store none.
/// </summary>
public static class ConvAlgorithms
{
    /// <summary>Longest algorithm text an engine file may hold (the reader checks it).</summary>
    public const int MaxTextLength = 256;

    /// <summary>Measures every convolution of <paramref name="graph"/> on <paramref name="backend"/> and stores the choices in its nodes.</summary>
    public static TuningReport Measure(ComputeGraph graph, IBackend backend)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(backend);
        if (backend is not CudaBackend cuda) return new TuningReport(0, 0, 0);
        foreach (var n in graph.Nodes) n.Algorithm = null;
        using var exec = new Executor(graph, backend);
        exec.Run();   // the first run measures each distinct convolution shape
        cuda.Synchronize();
        int count = 0;
        long max = 0;
        var distinct = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < exec.StepNodes.Count; i++)
        {
            if (exec.StepAt(i) is not ConvStep step) continue;
            var (x, w, p, e, y) = step.Operands;
            var node = exec.StepNodes[i];
            var (choice, ws) = cuda.ConvAlgorithm(x, w, p, e, y)
                ?? throw new GraphException($"node {node.Name}: the backend has no convolution plan after a run");
            node.Algorithm = choice;
            distinct.Add(choice);
            max = Math.Max(max, ws);
            count++;
        }
        return new TuningReport(count, distinct.Count, max);
    }

    /// <summary>
    /// Gives the backend every stored choice of the executor's graph (no measuring) and reserves their workspaces (one cached block per distinct size);
    /// returns the largest. A choice the backend cannot use (damaged id, other cuDNN, another device) is an
    /// <see cref="EngineFormatException"/> naming the node and asking for a rebuild.
    /// </summary>
    internal static long Pin(Executor exec)
    {
        long max = 0;
        var sizes = new HashSet<long>();
        var cuda = exec.Backend as CudaBackend;
        for (int i = 0; i < exec.StepNodes.Count; i++)
        {
            var node = exec.StepNodes[i];
            if (node.Algorithm is not { } text) continue;
            if (cuda is null)
                throw new EngineFormatException($"node {node.Name}: the engine stores a GPU algorithm ('{text}') but runs on {exec.Backend.Device}: rebuild it for this device");
            if (exec.StepAt(i) is not ConvStep step)
                throw new EngineFormatException($"node {node.Name} ({node.Kind}): only convolutions store an algorithm, found '{text}'");
            var (x, w, p, e, y) = step.Operands;
            try
            {
                long ws = cuda.PinConvAlgorithm(x, w, p, e, y, text);
                max = Math.Max(max, ws);
                if (ws > 0) sizes.Add(ws);
            }
            catch (Exception ex) when (ex is CudaException or FormatException)
            {
                throw new EngineFormatException($"node {node.Name}: stored convolution algorithm cannot be used: {ex.Message}", ex);
            }
        }
        // one cached block per distinct workspace size (the caching allocator serves a request from its own size bin), all
        // held at once so each stays cached: runs then take every workspace from the cache, with no driver allocation
        if (cuda is not null && sizes.Count > 0)
        {
            var blocks = new List<IDisposable>(sizes.Count);
            try
            {
                foreach (long b in sizes) blocks.Add(cuda.AllocateWorkspace(b));
            }
            finally
            {
                foreach (var b in blocks) b.Dispose();
            }
        }
        return max;
    }
}
