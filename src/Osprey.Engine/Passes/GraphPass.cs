using Osprey.Engine.Graph;

namespace Osprey.Engine.Passes;

/// <summary>One rewrite of the graph. Returns true if it changed anything.</summary>
public interface IGraphPass
{
    string Name { get; }
    bool Run(ComputeGraph graph);
}

/// <summary>What a pass manager run did, per pass.</summary>
public sealed record PassReport(string Pass, bool Changed, int NodesBefore, int NodesAfter, TimeSpan Time);

/// <summary>
/// Runs passes in order, compacting and validating the graph after each one (so a pass that breaks the graph
/// is named in the error), and reports nodes before/after and time per pass.
/// </summary>
public sealed class PassManager(IEnumerable<IGraphPass> passes)
{
    private readonly IGraphPass[] _passes = passes.ToArray();

    public IReadOnlyList<PassReport> Run(ComputeGraph graph)
    {
        ArgumentNullException.ThrowIfNull(graph);
        var reports = new List<PassReport>(_passes.Length);
        foreach (var p in _passes)
        {
            int before = graph.Nodes.Count;
            long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
            bool changed = p.Run(graph);
            graph.Compact();
            try { ShapeInference.Validate(graph); }
            catch (GraphException e) { throw new GraphException($"after pass {p.Name}: {e.Message}", e); }
            reports.Add(new PassReport(p.Name, changed, before, graph.Nodes.Count, System.Diagnostics.Stopwatch.GetElapsedTime(t0)));
        }
        return reports;
    }
}
