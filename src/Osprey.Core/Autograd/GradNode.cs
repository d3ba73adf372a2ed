using Osprey.Core.Ops;
using Osprey.Core.Tensors;

namespace Osprey.Core.Autograd;

/// <summary>
/// One recorded op: its inputs and output (by object identity), the tensors its backward needs
/// (saved through <see cref="Keep"/>, owned by the node), and the backward function itself.
/// Subclasses are per op family (Nodes.*.cs); they run with recording off and TensorScope suspended.
/// </summary>
internal abstract class GradNode
{
    private List<Tensor>? _saved;

    public Tensor?[] Inputs { get; set; } = [];
    public bool[] NeedsGrad { get; set; } = [];
    public Tensor Output { get; set; } = null!;
    public Shape OutputShape { get; set; }

    public abstract string Name { get; }

    public int SavedCount => _saved?.Count ?? 0;

    /// <summary>Saves what backward needs (inputs and output are still alive here).</summary>
    public virtual void Save() { }

    /// <summary>Writes the gradient of each input that <see cref="NeedsGrad"/> into <paramref name="inputGrads"/> (new tensors, shaped like the inputs).</summary>
    public abstract void Backward(Tensor g, Tensor?[] inputGrads);

    /// <summary>A reference the node owns until <see cref="Release"/>.</summary>
    protected Tensor Keep(Tensor t)
    {
        var s = t.Share();
        (_saved ??= []).Add(s);
        return s;
    }

    public void Release()
    {
        if (_saved is null) return;
        foreach (var t in _saved) t.Dispose();
        _saved = null;
    }

    protected bool Needs(int i) => NeedsGrad[i];

    /// <summary>Sums a broadcast gradient back to an operand's shape (over added leading and stretched size-1 dimensions).</summary>
    public static Tensor SumTo(Tensor g, Shape target)
    {
        if (g.Shape == target) return g.Share();
        int lead = g.Rank - target.Rank;
        var axes = new List<int>();
        for (int d = 0; d < g.Rank; d++)
            if (d < lead || (target[d - lead] == 1 && g.Shape[d] != 1)) axes.Add(d);
        if (axes.Count == 0) return g.Reshape(target.ToArray());
        using var s = Op.Sum(g, axes.ToArray(), keepDims: true);
        return s.Reshape(target.ToArray());
    }

    /// <summary>g expanded (stride 0) back over reduced axes: shape of the reduce with keepDims, then to the input's shape.</summary>
    protected static Tensor ExpandBack(Tensor g, Shape keptShape, Shape inputShape)
    {
        using var k = g.Reshape(keptShape.ToArray());
        using var e = k.Expand(inputShape);
        return Op.Contiguous(e);
    }
}
