using Osprey.Engine.Graph;

namespace Osprey.Engine.Runtime;

/// <summary>Where one buffer lives in the arena and the steps it is live for (inclusive).</summary>
public sealed record BufferPlacement(Value Value, long Offset, long Bytes, int First, int Last);

/// <summary>
/// The memory plan of a graph: every non-constant buffer (inputs, activations, outputs) at an offset of one arena;
/// buffers whose lifetimes overlap never overlap in memory. Inputs and outputs live for the whole run, so a run never
/// overwrites its input: running again (or replaying a CUDA graph) on the same loaded input gives the same outputs. <see cref="NaiveBytes"/> is the sum of all buffer sizes
/// (what one allocation per tensor with no reuse would hold).
/// </summary>
public sealed record MemoryPlan(IReadOnlyList<BufferPlacement> Buffers, long ArenaBytes, long NaiveBytes, long WeightBytes, long Alignment)
{
    public BufferPlacement For(Value v) => Buffers.FirstOrDefault(b => b.Value == v)
        ?? throw new GraphException($"value {v} ({v.Name}) has no place in the memory plan");
}

/// <summary>
/// Lifetimes to offsets: greedy by size with best fit (largest buffer first; each goes into the smallest gap
/// between buffers already placed that are live at the same time, else above them), as TFLite's arena planner.
/// </summary>
public static class MemoryPlanner
{
    public const long DefaultAlignment = 256;

    public static MemoryPlan Plan(ComputeGraph graph, long alignment = DefaultAlignment)
    {
        ArgumentNullException.ThrowIfNull(graph);
        var first = new Dictionary<Value, int>();
        var last = new Dictionary<Value, int>();
        foreach (var v in graph.Inputs) { first[v] = -1; last[v] = -1; }
        for (int i = 0; i < graph.Nodes.Count; i++)
        {
            var n = graph.Nodes[i];
            foreach (var input in n.Inputs)
            {
                var b = input.Buffer;
                if (b.Kind == ValueKind.Constant) continue;
                last[b] = Math.Max(last.GetValueOrDefault(b, i), i);
            }
            if (n.Kind != OpKind.View) { first[n.Output] = i; last[n.Output] = Math.Max(last.GetValueOrDefault(n.Output, i), i); }
        }
        foreach (var o in graph.Outputs) last[o.Buffer] = graph.Nodes.Count;
        // inputs too: were their bytes reused once read, a second run on the same loaded input (an engine's warm-up
        // before its CUDA-graph capture, then the replay) would read what later steps wrote there
        foreach (var v in graph.Inputs) last[v] = graph.Nodes.Count;
        var values = first.Keys.OrderBy(v => v.Id).ToArray();
        var items = values.Select(v => (Size: Align(v.Bytes, alignment), First: first[v], Last: last[v])).ToArray();
        var (offsets, total) = Place(items, alignment);
        var buffers = new BufferPlacement[values.Length];
        for (int i = 0; i < values.Length; i++) buffers[i] = new BufferPlacement(values[i], offsets[i], values[i].Bytes, items[i].First, items[i].Last);
        long weights = graph.Constants.Sum(c => Align(c.Bytes, alignment));
        return new MemoryPlan(buffers, total, items.Sum(x => x.Size), weights, alignment);
    }

    public static long Align(long bytes, long alignment) => (Math.Max(bytes, 1) + alignment - 1) / alignment * alignment;

    /// <summary>Offsets for items (size, first step, last step inclusive); returns them and the arena size.</summary>
    public static (long[] Offsets, long Total) Place(IReadOnlyList<(long Size, int First, int Last)> items, long alignment)
    {
        ArgumentNullException.ThrowIfNull(items);
        var order = Enumerable.Range(0, items.Count).OrderByDescending(i => items[i].Size).ThenBy(i => items[i].First).ToArray();
        var offsets = new long[items.Count];
        var placed = new List<int>();
        long total = 0;
        foreach (int i in order)
        {
            var (size, f, l) = items[i];
            long need = Align(size, alignment);
            var live = placed.Where(j => items[j].First <= l && f <= items[j].Last).OrderBy(j => offsets[j]).ToList();
            long prevEnd = 0, best = -1, bestGap = long.MaxValue;
            foreach (int j in live)
            {
                long gap = offsets[j] - prevEnd;
                if (gap >= need && gap < bestGap) { best = prevEnd; bestGap = gap; }
                prevEnd = Math.Max(prevEnd, offsets[j] + Align(items[j].Size, alignment));
            }
            offsets[i] = best >= 0 ? best : prevEnd;
            total = Math.Max(total, offsets[i] + need);
            placed.Add(i);
        }
        return (offsets, total);
    }
}
