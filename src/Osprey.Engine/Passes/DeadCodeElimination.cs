using Osprey.Engine.Graph;

namespace Osprey.Engine.Passes;

/// <summary>Removes nodes whose output nothing reads (and constants nothing reads, through Compact).</summary>
public sealed class DeadCodeElimination : IGraphPass
{
    public string Name => "dead-code";

    public bool Run(ComputeGraph graph)
    {
        ArgumentNullException.ThrowIfNull(graph);
        var live = new HashSet<Value>(graph.Outputs);
        bool changed = false;
        for (int i = graph.Nodes.Count - 1; i >= 0; i--)
        {
            var n = graph.Nodes[i];
            if (!n.Outputs.Any(live.Contains))
            {
                graph.Nodes.RemoveAt(i);
                changed = true;
                continue;
            }
            foreach (var v in n.Inputs) live.Add(v);
        }
        return changed;
    }
}
