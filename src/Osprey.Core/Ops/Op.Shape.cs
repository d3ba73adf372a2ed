using Osprey.Core.Autograd;
using Osprey.Core.Tensors;

namespace Osprey.Core.Ops;

public static partial class Op
{
    /// <summary>Joins tensors along an axis; all other dimensions must agree.</summary>
    public static Tensor Concat(IReadOnlyList<Tensor> xs, int axis)
    {
        ArgumentNullException.ThrowIfNull(xs);
        if (xs.Count == 0) OpArgumentException.Throw("concat", "no tensors given");
        var first = xs[0];
        int a = Shape.NormalizeAxis(axis, first.Rank, "concat");
        int total = 0;
        foreach (var x in xs)
        {
            SameDevice("concat", first, x);
            SameDType("concat", first, x);
            bool ok = x.Rank == first.Rank;
            for (int d = 0; ok && d < x.Rank; d++) ok = d == a || x.Shape[d] == first.Shape[d];
            if (!ok) OpArgumentException.Throw("concat", $"shapes {first.Shape} and {x.Shape} differ outside axis {a}");
            total += x.Shape[a];
        }
        var y = EmptyLike(first, first.Shape.With(a, total), format: FormatOf(first));
        int start = 0;
        foreach (var x in xs)
        {
            using var dst = y.Slice(a, start, start + x.Shape[a]);
            if (x.Numel > 0) x.Backend.Copy(x, dst);
            start += x.Shape[a];
        }
        if (GradTape.Active is { } tape) tape.Record(new ConcatNode(a), y, [.. xs]);
        return y;
    }

    /// <summary>Constant padding; pads[i] = (before, after) for dimension i (fewer pairs pad the leading dimensions by zero).</summary>
    public static Tensor Pad(Tensor x, IReadOnlyList<(int Before, int After)> pads, double value = 0)
    {
        x.ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(pads);
        if (pads.Count > x.Rank) OpArgumentException.Throw("pad", $"{pads.Count} pad pairs for a tensor of shape {x.Shape}");
        var dims = x.Shape.ToArray();
        var p = new (int Before, int After)[x.Rank];
        for (int i = 0; i < pads.Count; i++) p[x.Rank - pads.Count + i] = pads[i];
        for (int d = 0; d < x.Rank; d++)
        {
            if (p[d].Before < 0 || p[d].After < 0) OpArgumentException.Throw("pad", $"negative padding {p[d]} on dimension {d} of {x.Shape}");
            dims[d] += p[d].Before + p[d].After;
        }
        var y = EmptyLike(x, new Shape(dims), format: FormatOf(x));
        y.Backend.Fill(y, value);
        Tensor inner = y.Share();
        for (int d = 0; d < x.Rank; d++)
        {
            var next = inner.Slice(d, p[d].Before, p[d].Before + x.Shape[d]);
            inner.Dispose();
            inner = next;
        }
        if (x.Numel > 0) x.Backend.Copy(x, inner);
        inner.Dispose();
        if (GradTape.Active is { } tape) tape.Record(new PadNode(p), y, x);
        return y;
    }
}
