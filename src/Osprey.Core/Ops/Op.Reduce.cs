using Osprey.Core.Autograd;
using Osprey.Core.Backends;
using Osprey.Core.Tensors;

namespace Osprey.Core.Ops;

public static partial class Op
{
    /// <summary>Sum, mean, max or min over axes (all axes when none given).</summary>
    public static Tensor Reduce(ReduceOp op, Tensor x, int[]? axes = null, bool keepDims = false)
    {
        string name = op.ToString().ToLowerInvariant();
        x.ThrowIfDisposed();
        if (x.DType == DType.Bool) OpArgumentException.Throw(name, "cannot reduce a bool tensor");
        if (op == ReduceOp.Mean) RequireFloat(name, x);
        var ax = axes is null || axes.Length == 0
            ? Enumerable.Range(0, x.Rank).ToArray()
            : axes.Select(a => Shape.NormalizeAxis(a, x.Rank, name)).Distinct().Order().ToArray();
        if (ax.Length != (axes?.Length is null or 0 ? x.Rank : axes!.Length))
            OpArgumentException.Throw(name, $"repeated axis in [{string.Join(", ", axes!)}] for shape {x.Shape}");
        var kept = x.Shape.ToArray();
        foreach (int a in ax)
        {
            if (kept[a] == 0 && op is ReduceOp.Max or ReduceOp.Min)
                OpArgumentException.Throw(name, $"cannot take {name} over empty axis {a} of {x.Shape}");
            kept[a] = 1;
        }
        var y = EmptyLike(x, new Shape(kept));
        x.Backend.Reduce(op, x, ax, y);
        Tensor result = y;
        if (!keepDims)
        {
            var dims = Enumerable.Range(0, x.Rank).Where(d => !ax.Contains(d)).Select(d => x.Shape[d]).ToArray();
            using (y) result = y.Reshape(dims);
        }
        if (GradTape.Active is { } tape) tape.Record(new ReduceNode(op, ax), result, x);
        return result;
    }

    public static Tensor Sum(Tensor x, int[]? axes = null, bool keepDims = false) => Reduce(ReduceOp.Sum, x, axes, keepDims);
    public static Tensor Mean(Tensor x, int[]? axes = null, bool keepDims = false) => Reduce(ReduceOp.Mean, x, axes, keepDims);
    public static Tensor Max(Tensor x, int[]? axes = null, bool keepDims = false) => Reduce(ReduceOp.Max, x, axes, keepDims);
    public static Tensor Min(Tensor x, int[]? axes = null, bool keepDims = false) => Reduce(ReduceOp.Min, x, axes, keepDims);

    /// <summary>Index (int64) of the largest value along an axis; the first on ties.</summary>
    public static Tensor ArgMax(Tensor x, int axis, bool keepDims = false)
    {
        x.ThrowIfDisposed();
        int a = Shape.NormalizeAxis(axis, x.Rank, "argmax");
        if (x.Shape[a] == 0) OpArgumentException.Throw("argmax", $"empty axis {a} of {x.Shape}");
        var y = EmptyLike(x, x.Shape.With(a, 1), DType.Int64);
        x.Backend.ArgMax(x, a, y);
        if (keepDims) return y;
        using (y) return y.Squeeze(a);
    }

    public static Tensor Softmax(Tensor x, int axis) => SoftmaxCore(x, axis, log: false);
    public static Tensor LogSoftmax(Tensor x, int axis) => SoftmaxCore(x, axis, log: true);

    private static Tensor SoftmaxCore(Tensor x, int axis, bool log)
    {
        string name = log ? "log_softmax" : "softmax";
        x.ThrowIfDisposed();
        RequireFloat(name, x);
        int a = Shape.NormalizeAxis(axis, x.Rank, name);
        using var xc = Dense(x);
        var y = EmptyLike(x, x.Shape);
        x.Backend.Softmax(xc, a, log, y);
        if (GradTape.Active is { } tape) tape.Record(new SoftmaxNode(a, log), y, x);
        return y;
    }

    /// <summary>The k largest (or smallest) values along an axis, sorted, with their int64 indices; ties keep the lower index first.</summary>
    public static (Tensor Values, Tensor Indices) TopK(Tensor x, int k, int axis = -1, bool largest = true)
    {
        x.ThrowIfDisposed();
        if (x.DType == DType.Bool) OpArgumentException.Throw("topk", "bool tensors are not supported");
        int a = Shape.NormalizeAxis(axis, x.Rank, "topk");
        if (k < 0 || k > x.Shape[a]) OpArgumentException.Throw("topk", $"k={k} is out of range for axis {a} of {x.Shape}");
        using var xc = Dense(x);
        var values = EmptyLike(x, x.Shape.With(a, k));
        var indices = EmptyLike(x, x.Shape.With(a, k), DType.Int64);
        x.Backend.TopK(xc, k, a, largest, values, indices);
        return (values, indices);
    }

    /// <summary>torch.gather along an axis; index is int64 or int32 with x's rank; every index is range-checked.</summary>
    public static Tensor Gather(Tensor x, int axis, Tensor index)
    {
        SameDevice("gather", x, index);
        int a = Shape.NormalizeAxis(axis, x.Rank, "gather");
        CheckIndex("gather", index, x.Shape[a]);
        if (index.Rank != x.Rank) OpArgumentException.Throw("gather", $"index {index.Shape} must have the rank of input {x.Shape}");
        for (int d = 0; d < x.Rank; d++)
            if (d != a && index.Shape[d] > x.Shape[d])
                OpArgumentException.Throw("gather", $"index {index.Shape} is larger than input {x.Shape} in dimension {d}");
        var y = EmptyLike(x, index.Shape);
        x.Backend.Gather(x, a, index, y);
        if (GradTape.Active is { } tape) tape.Record(new GatherNode(a, indexSelect: false), y, x, index);
        return y;
    }

    /// <summary>torch.index_select: whole slices of x along an axis, picked by a 1-D int64 or int32 index.</summary>
    public static Tensor IndexSelect(Tensor x, int axis, Tensor index)
    {
        SameDevice("index_select", x, index);
        int a = Shape.NormalizeAxis(axis, x.Rank, "index_select");
        if (index.Rank != 1) OpArgumentException.Throw("index_select", $"index must be 1-D, got {index.Shape}");
        CheckIndex("index_select", index, x.Shape[a]);
        var y = EmptyLike(x, x.Shape.With(a, index.Shape[0]));
        x.Backend.IndexSelect(x, a, index, y);
        if (GradTape.Active is { } tape) tape.Record(new GatherNode(a, indexSelect: true), y, x, index);
        return y;
    }

    /// <summary>Throws if any index is outside [0, size). Reads the indices on the host: a GPU pipeline that must not synchronise uses kernels that clamp instead.</summary>
    private static void CheckIndex(string op, Tensor index, int size)
    {
        if (index.DType is not (DType.Int64 or DType.Int32))
            OpArgumentException.Throw(op, $"index must be int64 or int32, got {index.DType.Name()}");
        long[] values = index.DType == DType.Int64 ? index.ToArray<long>() : Array.ConvertAll(index.ToArray<int>(), v => (long)v);
        for (int i = 0; i < values.Length; i++)
            if (values[i] < 0 || values[i] >= size)
                OpArgumentException.Throw(op, $"index {values[i]} at flat position {i} is out of range [0, {size})");
    }
}
