using Osprey.Core.Autograd;
using Osprey.Core.Backends;

namespace Osprey.Core.Tensors;

/// <summary>Views: new tensors over the same storage, no copies. Each must be disposed.</summary>
public sealed partial class Tensor
{
    /// <summary>Same elements, new shape (one dimension may be -1). A view when the strides allow it, otherwise a contiguous copy.</summary>
    public Tensor Reshape(params int[] shape)
    {
        var target = InferShape(shape);
        Tensor y;
        if (IsContiguous()) y = View(target, target.ContiguousStrides(), Offset);
        else
        {
            using var c = Ops.Op.Contiguous(this);
            y = c.View(target, target.ContiguousStrides(), c.Offset);
        }
        return Recorded(y, "reshape");
    }

    private Shape InferShape(int[] shape)
    {
        int infer = -1;
        long known = 1;
        for (int i = 0; i < shape.Length; i++)
        {
            if (shape[i] == -1)
            {
                if (infer >= 0) OpArgumentException.Throw("reshape", $"more than one -1 in {new Shape(Array.ConvertAll(shape, d => Math.Max(d, 0)))}");
                infer = i;
            }
            else if (shape[i] < 0) OpArgumentException.Throw("reshape", $"negative size {shape[i]}");
            else known *= shape[i];
        }
        var dims = (int[])shape.Clone();
        if (infer >= 0)
        {
            if (known == 0 || Numel % known != 0)
                OpArgumentException.Throw("reshape", $"cannot infer -1 reshaping {Shape} ({Numel} elements)");
            dims[infer] = (int)(Numel / known);
        }
        var result = new Shape(dims);
        if (result.Numel != Numel)
            OpArgumentException.Throw("reshape", $"shape {Shape} ({Numel} elements) cannot become {result} ({result.Numel} elements)");
        return result;
    }

    /// <summary>Reorders dimensions: result dimension i is this tensor's dimension dims[i].</summary>
    public Tensor Permute(params int[] dims)
    {
        if (dims.Length != Rank) OpArgumentException.Throw("permute", $"{dims.Length} dims given for a tensor of shape {Shape}");
        var seen = new bool[Rank];
        var shape = new int[Rank];
        var strides = new long[Rank];
        for (int i = 0; i < Rank; i++)
        {
            int d = Shape.NormalizeAxis(dims[i], Rank, "permute");
            if (seen[d]) OpArgumentException.Throw("permute", $"dimension {d} repeated in permutation of {Shape}");
            seen[d] = true;
            shape[i] = Shape[d];
            strides[i] = _strides[d];
        }
        var y = View(new Shape(shape), strides, Offset);
        if (GradTape.Active is { } tape) tape.Record(new PermuteNode((int[])dims.Clone()), y, this);
        return y;
    }

    /// <summary>Records a reshape-like view (same elements, new shape) on the active tape.</summary>
    private Tensor Recorded(Tensor view, string name)
    {
        if (GradTape.Active is { } tape) tape.Record(new ReshapeNode(name), view, this);
        return view;
    }

    public Tensor Transpose(int dim0, int dim1)
    {
        var perm = new int[Rank];
        for (int i = 0; i < Rank; i++) perm[i] = i;
        int a = Shape.NormalizeAxis(dim0, Rank, "transpose"), b = Shape.NormalizeAxis(dim1, Rank, "transpose");
        (perm[a], perm[b]) = (perm[b], perm[a]);
        return Permute(perm);
    }

    /// <summary>Elements start, start+step, ... below end along an axis (negative start/end count from the end, as Python).</summary>
    public Tensor Slice(int axis, int start, int end, int step = 1)
    {
        int a = Shape.NormalizeAxis(axis, Rank, "slice");
        int n = Shape[a];
        if (step <= 0) OpArgumentException.Throw("slice", $"step must be positive, got {step}");
        int s = start < 0 ? start + n : start;
        int e = end < 0 ? end + n : end;
        if (s < 0 || s > n || e < s || e > n)
            OpArgumentException.Throw("slice", $"range [{start}, {end}) is out of bounds for axis {a} of size {n} in shape {Shape}");
        int len = (e - s + step - 1) / step;
        var strides = _strides.ToArray();
        strides[a] *= step;
        var y = View(Shape.With(a, len), strides, Offset + s * _strides[a]);
        if (GradTape.Active is { } tape) tape.Record(new SliceNode(a, s, step), y, this);
        return y;
    }

    /// <summary>Size-1 dimensions repeated (stride 0) to reach <paramref name="shape"/>; leading dimensions may be added.</summary>
    public Tensor Expand(Shape shape)
    {
        var y = ExpandView(shape);
        if (GradTape.Active is { } tape) tape.Record(new ExpandNode(), y, this);
        return y;
    }

    /// <summary>Expand without recording on a tape: for ops that broadcast their operands internally and record themselves.</summary>
    internal Tensor ExpandView(Shape shape)
    {
        if (shape.Rank < Rank) OpArgumentException.Throw("expand", $"cannot expand {Shape} to fewer dimensions {shape}");
        var strides = new long[shape.Rank];
        int lead = shape.Rank - Rank;
        for (int i = 0; i < shape.Rank; i++)
        {
            if (i < lead) { strides[i] = 0; continue; }
            int d = Shape[i - lead];
            if (d == shape[i]) strides[i] = _strides[i - lead];
            else if (d == 1) strides[i] = 0;
            else OpArgumentException.Throw("expand", $"cannot expand {Shape} to {shape}");
        }
        return View(shape, strides, Offset);
    }

    public Tensor Unsqueeze(int axis)
    {
        int a = Shape.NormalizeAxis(axis, Rank + 1, "unsqueeze");
        var dims = Shape.ToArray().ToList();
        var strides = _strides.ToList();
        dims.Insert(a, 1);
        strides.Insert(a, a < Rank ? _strides[a] * Shape[a] : 1);
        return Recorded(View(new Shape(dims.ToArray()), strides.ToArray(), Offset), "unsqueeze");
    }

    public Tensor Squeeze(int axis)
    {
        int a = Shape.NormalizeAxis(axis, Rank, "squeeze");
        if (Shape[a] != 1) OpArgumentException.Throw("squeeze", $"axis {a} of {Shape} has size {Shape[a]}, not 1");
        var dims = Shape.ToArray().ToList();
        var strides = _strides.ToList();
        dims.RemoveAt(a);
        strides.RemoveAt(a);
        return Recorded(View(new Shape(dims.ToArray()), strides.ToArray(), Offset), "squeeze");
    }

    /// <summary>Splits an axis into pieces of the given sizes (views).</summary>
    public Tensor[] Split(int axis, params int[] sizes)
    {
        int a = Shape.NormalizeAxis(axis, Rank, "split");
        if (sizes.Sum() != Shape[a]) OpArgumentException.Throw("split", $"sizes sum to {sizes.Sum()}, axis {a} of {Shape} has {Shape[a]}");
        var parts = new Tensor[sizes.Length];
        int start = 0;
        for (int i = 0; i < sizes.Length; i++) { parts[i] = Slice(a, start, start + sizes[i]); start += sizes[i]; }
        return parts;
    }
}
