using Osprey.Core.Ops;
using Osprey.Core.Tensors;
using Osprey.Tests.Support;

namespace Osprey.Tests.Autograd;

/// <summary>Finite-difference gradient checks of views, concat, pad and indexing. Each view is followed by a
/// multiplication with a fixed tensor so that the gradient reaching it is not uniform.</summary>
public class ShapeGradTests
{
    private static Tensor Weighted(Tensor y)
    {
        using (y)
        {
            using var w = Rand.Tensor(99, y.Shape);
            return Op.Mul(y, w);
        }
    }

    [Fact]
    public void Reshape_permute_transpose()
    {
        using var x = Rand.Tensor(1, new Shape(2, 3, 5));
        GradCheck.Check("reshape", t => Weighted(t[0].Reshape(5, -1)), [x]);
        GradCheck.Check("permute", t => Weighted(t[0].Permute(2, 0, 1)), [x]);
        GradCheck.Check("transpose then reshape (copy)", t =>
        {
            using var tr = t[0].Transpose(0, 2);
            return Weighted(tr.Reshape(-1));
        }, [x]);
    }

    [Fact]
    public void Squeeze_unsqueeze_expand()
    {
        using var x = Rand.Tensor(2, new Shape(3, 1, 4));
        GradCheck.Check("squeeze", t => Weighted(t[0].Squeeze(1)), [x]);
        GradCheck.Check("unsqueeze", t => Weighted(t[0].Unsqueeze(0)), [x]);
        GradCheck.Check("expand", t => Weighted(t[0].Expand(new Shape(2, 3, 5, 4))), [x]);
    }

    [Theory]
    [InlineData(0, 1, 3, 1)]
    [InlineData(1, 0, 5, 2)]
    [InlineData(2, -3, -1, 1)]
    [InlineData(1, 2, 2, 1)]
    public void Slice(int axis, int start, int end, int step)
    {
        using var x = Rand.Tensor(3, new Shape(4, 5, 6));
        GradCheck.Check($"slice {axis} {start}:{end}:{step}", t => Weighted(t[0].Slice(axis, start, end, step)), [x]);
    }

    [Fact]
    public void Split_then_use_both_parts()
    {
        using var x = Rand.Tensor(4, new Shape(3, 7));
        GradCheck.Check("split", t =>
        {
            var parts = t[0].Split(1, 3, 4);
            using var a = parts[0];
            using var b = parts[1];
            using var s = Op.Sum(b, [1], keepDims: true);
            return Weighted(Op.Mul(a, s));
        }, [x]);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(-1)]
    public void Concat(int axis)
    {
        int[] sa = [2, 3, 4], sb = [2, 3, 4];
        int a = axis < 0 ? 2 : axis;
        sb[a] = 5;
        using var x = Rand.Tensor(5, new Shape(sa));
        using var y = Rand.Tensor(6, new Shape(sb));
        GradCheck.Check($"concat {axis}", t => Weighted(Op.Concat([t[0], t[1], t[0]], axis)), [x, y]);
    }

    [Fact]
    public void Pad()
    {
        using var x = Rand.Tensor(7, new Shape(2, 3, 4));
        GradCheck.Check("pad", t => Weighted(Op.Pad(t[0], [(1, 0), (2, 3)], 0.5)), [x]);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void Gather_with_repeated_indices(int axis)
    {
        using var x = Rand.Tensor(8, new Shape(4, 5));
        long[] idx = axis == 0 ? [0, 3, 3, 1, 2, 0, 0, 0, 1, 2, 3, 3] : [4, 4, 0, 1, 2, 2, 3, 1, 0, 4, 4, 4];
        using var index = axis == 0 ? Tensor.FromArray(idx, 3, 4) : Tensor.FromArray(idx, 4, 3);
        GradCheck.Check($"gather {axis}", t => Weighted(Op.Gather(t[0], axis, index)), [x]);
    }

    [Fact]
    public void Index_select_with_repeats()
    {
        using var x = Rand.Tensor(9, new Shape(3, 5, 2));
        using var index = Tensor.FromArray(new long[] { 4, 0, 4, 2 }, 4);
        GradCheck.Check("index_select", t => Weighted(Op.IndexSelect(t[0], 1, index)), [x]);
    }

    [Fact]
    public void Head_flatten_as_the_detection_models_do()
    {
        // [N, A*K, H, W] -> view [N, A, K, H, W] -> permute (0, 3, 4, 1, 2) -> reshape [N, -1, K], then concat levels
        using var p3 = Rand.Tensor(10, new Shape(2, 6, 3, 2));
        using var p4 = Rand.Tensor(11, new Shape(2, 6, 1, 2));
        GradCheck.Check("flatten+concat", t =>
        {
            var flat = t.Select(p =>
            {
                using var v = p.Reshape(2, 3, 2, p.Shape[2], p.Shape[3]);
                using var q = v.Permute(0, 3, 4, 1, 2);
                return q.Reshape(2, -1, 2);
            }).ToArray();
            try { return Weighted(Op.Concat(flat, 1)); }
            finally { foreach (var f in flat) f.Dispose(); }
        }, [p3, p4]);
    }
}
